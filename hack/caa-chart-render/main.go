// A by-hand check of integrations/caa/patches/0006 against CAA's real chart (hack/caa-chart-check.sh):
// renders one template of the chart with Go's text/template, sprig and Helm's include, toYaml,
// fail and required; values.yaml deep-merged with -f files and key.path=value settings. Not Helm:
// no subcharts, no .Capabilities, no lookup. Usage: caa-chart-render CHART TEMPLATE [-f FILE]... [k=v]...
package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	sprig "github.com/Masterminds/sprig/v3"
	"github.com/ghodss/yaml"
)

func merge(dst, src map[string]interface{}) map[string]interface{} {
	for k, v := range src {
		if sm, ok := v.(map[string]interface{}); ok {
			if dm, ok := dst[k].(map[string]interface{}); ok {
				dst[k] = merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
	return dst
}

func load(path string) map[string]interface{} {
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	m := map[string]interface{}{}
	if err := yaml.Unmarshal(b, &m); err != nil {
		panic(fmt.Errorf("%s: %w", path, err))
	}
	return m
}

func main() {
	chart, name := os.Args[1], os.Args[2]
	values := load(filepath.Join(chart, "values.yaml"))
	args := os.Args[3:]
	for i := 0; i < len(args); i++ {
		if args[i] == "-f" {
			values = merge(values, load(args[i+1]))
			i++
			continue
		}
		kv := strings.SplitN(args[i], "=", 2)
		var v interface{}
		if err := yaml.Unmarshal([]byte(kv[1]), &v); err != nil {
			panic(err)
		}
		keys := strings.Split(kv[0], ".")
		m := values
		for _, k := range keys[:len(keys)-1] {
			next, ok := m[k].(map[string]interface{})
			if !ok {
				next = map[string]interface{}{}
				m[k] = next
			}
			m = next
		}
		m[keys[len(keys)-1]] = v
	}

	t := template.New("chart").Option("missingkey=zero")
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	funcs["toYaml"] = func(v interface{}) string {
		b, err := yaml.Marshal(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(b), "\n")
	}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		var buf bytes.Buffer
		err := t.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	funcs["fail"] = func(msg string) (string, error) { return "", errors.New(msg) }
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil || v == "" {
			return nil, errors.New(msg)
		}
		return v, nil
	}
	t.Funcs(funcs)
	files, _ := filepath.Glob(filepath.Join(chart, "templates", "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			panic(err)
		}
		if _, err := t.New(filepath.Base(f)).Parse(string(b)); err != nil {
			panic(err)
		}
	}
	data := map[string]interface{}{
		"Values":  values,
		"Release": map[string]interface{}{"Namespace": "confidential-containers-system", "Name": "peerpods", "Service": "Helm"},
		"Chart":   map[string]interface{}{"Name": "peerpods"},
	}
	var out bytes.Buffer
	if err := t.ExecuteTemplate(&out, name, data); err != nil {
		fmt.Fprintln(os.Stderr, "render error:", err)
		os.Exit(1)
	}
	fmt.Print(strings.ReplaceAll(out.String(), "<no value>", ""))
}
