// Command dockerfile_check parses a Dockerfile with BuildKit's own parser and instruction
// decoder (what `docker build` runs first), with BuildKit's build checks (`docker build --check`)
// turned on, and prints the stages and their instructions as JSON for
// tests/infra/dockerfile_test.ts to assert on. It exits non-zero when the file does not parse;
// check warnings are reported in the output, not as a failure, so the test names them.
//
// Given a build context folder too, it also lists the files `docker build` would send from it,
// applying the context's .dockerignore with the pattern matcher Docker uses.
//
//	go run ./infra/tools/dockerfile_check Dockerfile [<context>]
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

type command struct {
	// Name is the instruction in lower case (`run`, `copy`, `user`, ...).
	Name string `json:"name"`
	// Original is the instruction as written, continuation lines joined.
	Original string `json:"original"`
	// Detail is BuildKit's decoded instruction (flags, arguments, exec form or shell form).
	Detail any `json:"detail"`
}

type stage struct {
	Name     string    `json:"name"`
	Base     string    `json:"base"`
	Commands []command `json:"commands"`
}

type report struct {
	MetaArgs []string  `json:"metaArgs"`
	Stages   []stage   `json:"stages"`
	Warnings []warning `json:"warnings"`
	// Context is the files of the build context after .dockerignore, when a context was given.
	Context []string `json:"context,omitempty"`
}

type warning struct {
	Rule    string `json:"rule"`
	Message string `json:"message"`
	Line    int    `json:"line"`
}

func main() {
	if len(os.Args) != 2 && len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: dockerfile_check <Dockerfile> [<context>]")
		os.Exit(2)
	}
	file, err := os.Open(os.Args[1])
	if err != nil {
		fail(err)
	}
	defer file.Close()
	result, err := parser.Parse(file)
	if err != nil {
		fail(err)
	}
	out := report{MetaArgs: []string{}, Stages: []stage{}, Warnings: []warning{}}
	for _, w := range result.Warnings {
		out.Warnings = append(out.Warnings, warning{Rule: "parser", Message: w.Short, Line: line(w.Location)})
	}
	lint := linter.New(&linter.Config{
		Warn: func(rule, _, _, message string, location []parser.Range) {
			out.Warnings = append(out.Warnings, warning{Rule: rule, Message: message, Line: firstLine(location)})
		},
	})
	stages, metaArgs, err := instructions.Parse(result.AST, lint)
	if err != nil {
		fail(err)
	}
	for _, arg := range metaArgs {
		for _, pair := range arg.Args {
			out.MetaArgs = append(out.MetaArgs, pair.Key)
		}
	}
	// The source lines of each instruction, to report them as written.
	originals := map[int]string{}
	for _, node := range result.AST.Children {
		originals[node.StartLine] = node.Original
	}
	for _, s := range stages {
		decoded := stage{Name: s.Name, Base: s.BaseName, Commands: []command{}}
		for _, c := range s.Commands {
			decoded.Commands = append(decoded.Commands, command{
				Name:     c.Name(),
				Original: originals[firstLine(c.Location())],
				Detail:   c,
			})
		}
		out.Stages = append(out.Stages, decoded)
	}
	if len(os.Args) == 3 {
		if out.Context, err = contextFiles(os.Args[2]); err != nil {
			fail(err)
		}
	}
	encoded, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		fail(err)
	}
	fmt.Println(string(encoded))
}

// contextFiles lists the files under root that .dockerignore does not exclude, as slash paths.
func contextFiles(root string) ([]string, error) {
	patterns := []string{}
	ignore, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err == nil {
		patterns, err = ignorefile.ReadAll(ignore)
		ignore.Close()
		if err != nil {
			return nil, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	matcher, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, err
	}
	files := []string{}
	err = filepath.WalkDir(root, func(path string, entry fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		relative, err := filepath.Rel(root, path)
		if err != nil || relative == "." {
			return err
		}
		relative = filepath.ToSlash(relative)
		excluded, err := matcher.MatchesOrParentMatches(relative)
		if err != nil {
			return err
		}
		if entry.IsDir() {
			// A folder that is excluded, with no `!` pattern that could bring a file back.
			if excluded && !matcher.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
		if !excluded {
			files = append(files, relative)
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}

func line(location *parser.Range) int {
	if location == nil {
		return 0
	}
	return location.Start.Line
}

func firstLine(location []parser.Range) int {
	if len(location) == 0 {
		return 0
	}
	return location[0].Start.Line
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "Cannot parse the Dockerfile: %v\n", err)
	os.Exit(1)
}
