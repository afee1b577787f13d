// Command schemas turns the Kubernetes OpenAPI v2 document (api/openapi-spec/swagger.json of the
// k8s.io/kubernetes module) into JSON schemas laid out for kubeconform's `-schema-location`
// template `<out>/{{ .ResourceKind }}{{ .KindSuffix }}.json`, so manifests validate offline.
//
// The conversion follows kubeconform's own schemas (yannh/kubernetes-json-schema, "strict"
// flavour), written here because those schemas are only published on GitHub:
//   - every object schema with `properties` gets `additionalProperties: false` (strict: a
//     misspelt field is an error, as with `kubectl --validate=strict`);
//   - IntOrString becomes `oneOf: [string, integer]` and Quantity `oneOf: [string, number]` (the
//     OpenAPI document types both as strings, but `port: 8080` and `cpu: 1` are valid YAML);
//   - a top-level kind's `kind` and `apiVersion` are restricted to its group-version-kinds.
//
// Definitions stay in one `_definitions.json`; each kind's file is a `$ref` into it, which
// kubeconform's loader resolves from the same folder.
//
//	go run ./schemas -swagger <k8s.io/kubernetes>/api/openapi-spec/swagger.json -out <dir>
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

const definitionsFile = "_definitions.json"

type schema = map[string]any

type groupVersionKind struct {
	Group   string `json:"group"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
}

func main() {
	swaggerPath := flag.String("swagger", "", "path of the Kubernetes swagger.json")
	out := flag.String("out", "", "folder to write the schemas to")
	flag.Parse()
	if *swaggerPath == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: schemas -swagger <swagger.json> -out <dir>")
		os.Exit(2)
	}
	count, err := convert(*swaggerPath, *out)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Cannot convert %q: %v\n", *swaggerPath, err)
		os.Exit(1)
	}
	fmt.Printf("%d kinds written to %s\n", count, *out)
}

func convert(swaggerPath, out string) (int, error) {
	raw, err := os.ReadFile(swaggerPath)
	if err != nil {
		return 0, err
	}
	var document struct {
		Definitions map[string]schema `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &document); err != nil {
		return 0, err
	}
	if len(document.Definitions) == 0 {
		return 0, fmt.Errorf("no definitions")
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return 0, err
	}

	kinds := map[string]string{} // file name -> definition name
	for name, definition := range document.Definitions {
		switch {
		case strings.HasSuffix(name, ".intstr.IntOrString"):
			document.Definitions[name] = oneOf(definition, "string", "integer")
			continue
		case strings.HasSuffix(name, ".resource.Quantity"):
			document.Definitions[name] = oneOf(definition, "string", "number")
			continue
		}
		strict(definition)
		gvks, err := groupVersionKinds(definition)
		if err != nil {
			return 0, fmt.Errorf("definition %q: %w", name, err)
		}
		if len(gvks) == 0 {
			continue
		}
		restrictKind(definition, gvks)
		for _, gvk := range gvks {
			file := fileName(gvk)
			if previous, taken := kinds[file]; taken && previous != name {
				// The same kind under two definitions (e.g. a deprecated alias): keep the first
				// in name order, so the output does not depend on map order.
				if previous < name {
					continue
				}
			}
			kinds[file] = name
		}
	}

	definitions, err := json.Marshal(schema{"definitions": document.Definitions})
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(filepath.Join(out, definitionsFile), definitions, 0o644); err != nil {
		return 0, err
	}
	files := make([]string, 0, len(kinds))
	for file := range kinds {
		files = append(files, file)
	}
	sort.Strings(files)
	for _, file := range files {
		ref, err := json.Marshal(schema{"$ref": definitionsFile + "#/definitions/" + kinds[file]})
		if err != nil {
			return 0, err
		}
		if err := os.WriteFile(filepath.Join(out, file), ref, 0o644); err != nil {
			return 0, err
		}
	}
	return len(files), nil
}

// strict adds `additionalProperties: false` to every object schema with properties, walking
// only schema positions (a property may itself be named "properties" or "$ref").
func strict(node schema) {
	if properties, ok := node["properties"].(map[string]any); ok {
		if _, set := node["additionalProperties"]; !set {
			node["additionalProperties"] = false
		}
		for _, property := range properties {
			if child, ok := property.(map[string]any); ok {
				strict(child)
			}
		}
	}
	if items, ok := node["items"].(map[string]any); ok {
		strict(items)
	}
	if additional, ok := node["additionalProperties"].(map[string]any); ok {
		strict(additional)
	}
	for _, keyword := range []string{"allOf", "anyOf", "oneOf"} {
		if list, ok := node[keyword].([]any); ok {
			for _, entry := range list {
				if child, ok := entry.(map[string]any); ok {
					strict(child)
				}
			}
		}
	}
}

func oneOf(definition schema, types ...string) schema {
	alternatives := make([]any, len(types))
	for i, t := range types {
		alternatives[i] = schema{"type": t}
	}
	return schema{"description": definition["description"], "oneOf": alternatives}
}

func groupVersionKinds(definition schema) ([]groupVersionKind, error) {
	raw, ok := definition["x-kubernetes-group-version-kind"]
	if !ok {
		return nil, nil
	}
	encoded, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	var gvks []groupVersionKind
	if err := json.Unmarshal(encoded, &gvks); err != nil {
		return nil, err
	}
	return gvks, nil
}

// restrictKind limits `kind` and `apiVersion` to the definition's group-version-kinds, so a
// manifest that names another kind or version cannot pass against this schema.
func restrictKind(definition schema, gvks []groupVersionKind) {
	properties, ok := definition["properties"].(map[string]any)
	if !ok {
		return
	}
	kinds, apiVersions := []any{}, []any{}
	seen := map[string]bool{}
	for _, gvk := range gvks {
		if !seen["k:"+gvk.Kind] {
			seen["k:"+gvk.Kind] = true
			kinds = append(kinds, gvk.Kind)
		}
		if apiVersion := apiVersionOf(gvk); !seen["v:"+apiVersion] {
			seen["v:"+apiVersion] = true
			apiVersions = append(apiVersions, apiVersion)
		}
	}
	if kind, ok := properties["kind"].(map[string]any); ok {
		kind["enum"] = kinds
	}
	if apiVersion, ok := properties["apiVersion"].(map[string]any); ok {
		apiVersion["enum"] = apiVersions
	}
}

func apiVersionOf(gvk groupVersionKind) string {
	if gvk.Group == "" {
		return gvk.Version
	}
	return gvk.Group + "/" + gvk.Version
}

// fileName is kubeconform's `{{ .ResourceKind }}{{ .KindSuffix }}.json`: the lower-case kind,
// the first label of the group (none for the core group) and the version.
func fileName(gvk groupVersionKind) string {
	suffix := ""
	if gvk.Group != "" {
		suffix = "-" + strings.ToLower(strings.Split(gvk.Group, ".")[0])
	}
	return strings.ToLower(gvk.Kind) + suffix + "-" + strings.ToLower(gvk.Version) + ".json"
}
