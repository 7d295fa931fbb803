// Command render renders a Helm chart the way `helm template` does, for machines without helm
// (CI, the chart checks). It uses the same engine as helm: Go text/template with sprig v3 and
// helm's own functions, values merged from the chart's values.yaml and then each -f file in order.
//
//	render [-f values.yaml]... [--set a.b=c]... [--name food] [--namespace default] [--upgrade] CHART_DIR
//
// Not covered: subcharts, values.schema.json validation (the chart checks validate with ajv),
// kind-ordered output (documents come out by template file name), and `lookup` (always empty, as
// under `helm template`).
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"gopkg.in/yaml.v3"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var valueFiles, sets, setStrings, apiVersions listFlag
	flags := flag.NewFlagSet("render", flag.ContinueOnError)
	flags.Var(&valueFiles, "f", "values file, merged over the chart's values.yaml (repeatable)")
	flags.Var(&valueFiles, "values", "same as -f")
	flags.Var(&sets, "set", "a.b=value (typed: true/false/null/integers), merged last (repeatable)")
	flags.Var(&setStrings, "set-string", "a.b=value, always a string (repeatable)")
	flags.Var(&apiVersions, "api-versions", "extra API versions for .Capabilities.APIVersions (repeatable)")
	name := flags.String("name", "food", "release name")
	namespace := flags.String("namespace", "default", "release namespace")
	upgrade := flags.Bool("upgrade", false, "render as an upgrade (.Release.IsUpgrade) rather than an install")
	kubeVersion := flags.String("kube-version", "v1.31.0", ".Capabilities.KubeVersion")
	// Go's flag package stops at the first positional argument; accept the chart anywhere.
	var positional []string
	var args []string
	for _, arg := range os.Args[1:] {
		// `pnpm render -- ...` passes the separator on.
		if arg != "--" {
			args = append(args, arg)
		}
	}
	for len(args) > 0 {
		if err := flags.Parse(args); err != nil {
			os.Exit(2)
		}
		if flags.NArg() == 0 {
			break
		}
		positional = append(positional, flags.Arg(0))
		args = flags.Args()[1:]
	}
	if len(positional) != 1 {
		fmt.Fprintln(os.Stderr, "usage: render [-f values.yaml]... [--set a.b=c]... [--name N] [--namespace NS] [--upgrade] CHART_DIR")
		os.Exit(2)
	}
	out, err := render(options{
		chartDir:    positional[0],
		valueFiles:  valueFiles,
		sets:        sets,
		setStrings:  setStrings,
		release:     *name,
		namespace:   *namespace,
		upgrade:     *upgrade,
		kubeVersion: *kubeVersion,
		apiVersions: apiVersions,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %s\n", err)
		os.Exit(1)
	}
	os.Stdout.WriteString(out)
}

type options struct {
	chartDir                     string
	valueFiles, sets, setStrings []string
	release, namespace           string
	upgrade                      bool
	kubeVersion                  string
	apiVersions                  []string
}

func render(o options) (string, error) {
	chartYaml, err := readYAMLMap(filepath.Join(o.chartDir, "Chart.yaml"))
	if err != nil {
		return "", err
	}
	chart := chartMetadata(chartYaml)
	chartName, _ := chart["Name"].(string)
	if chartName == "" {
		return "", errors.New("Chart.yaml has no name")
	}

	values, err := readYAMLMap(filepath.Join(o.chartDir, "values.yaml"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if values == nil {
		values = map[string]interface{}{}
	}
	for _, file := range o.valueFiles {
		override, err := readYAMLMap(file)
		if err != nil {
			return "", err
		}
		values = mergeValues(values, override)
	}
	for _, set := range o.sets {
		if err := applySet(values, set, false); err != nil {
			return "", err
		}
	}
	for _, set := range o.setStrings {
		if err := applySet(values, set, true); err != nil {
			return "", err
		}
	}

	files, templates, err := loadChartFiles(o.chartDir)
	if err != nil {
		return "", err
	}

	major, minor := kubeMajorMinor(o.kubeVersion)
	data := map[string]interface{}{
		"Values": values,
		"Release": map[string]interface{}{
			"Name": o.release, "Namespace": o.namespace, "Service": "Helm",
			"IsInstall": !o.upgrade, "IsUpgrade": o.upgrade, "Revision": 1,
		},
		"Chart": chart,
		"Capabilities": map[string]interface{}{
			"KubeVersion": map[string]interface{}{"Version": o.kubeVersion, "GitVersion": o.kubeVersion, "Major": major, "Minor": minor},
			"APIVersions": append(defaultAPIVersions(), o.apiVersions...),
			"HelmVersion": map[string]interface{}{"Version": "v3.16.0"},
		},
		"Files": files,
	}

	root := template.New("gotpl").Option("missingkey=zero")
	root.Funcs(funcMap(root))
	names := make([]string, 0, len(templates))
	for rel := range templates {
		names = append(names, rel)
	}
	sort.Strings(names)
	for _, rel := range names {
		if _, err := root.New(chartName + "/templates/" + rel).Parse(templates[rel]); err != nil {
			return "", err
		}
	}

	var out strings.Builder
	for _, rel := range names {
		base := path.Base(rel)
		if strings.HasPrefix(base, "_") || base == "NOTES.txt" {
			continue
		}
		name := chartName + "/templates/" + rel
		scoped := copyMap(data)
		scoped["Template"] = map[string]interface{}{"Name": name, "BasePath": chartName + "/templates"}
		var buf strings.Builder
		if err := root.ExecuteTemplate(&buf, name, scoped); err != nil {
			return "", cleanExecError(err)
		}
		rendered := strings.ReplaceAll(buf.String(), "<no value>", "")
		for _, doc := range splitManifests(rendered) {
			var parsed interface{}
			if err := yaml.Unmarshal([]byte(doc), &parsed); err != nil {
				return "", fmt.Errorf("YAML parse error on %s: %w", name, err)
			}
			fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", name, doc)
		}
	}
	return out.String(), nil
}

// Helm's own functions beside sprig's; env and expandenv are removed as helm does.
func funcMap(root *template.Template) template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	included := map[string]int{}
	extra := template.FuncMap{
		"toYaml":        toYAML,
		"mustToYaml":    mustToYAML,
		"fromYaml":      fromYAML,
		"fromYamlArray": fromYAMLArray,
		"toJson":        toJSON,
		"mustToJson":    mustToJSON,
		"fromJson":      fromJSON,
		"fromJsonArray": fromJSONArray,
		"required": func(warn string, val interface{}) (interface{}, error) {
			if val == nil {
				return val, errors.New(warn)
			}
			if s, ok := val.(string); ok && s == "" {
				return val, errors.New(warn)
			}
			return val, nil
		},
		"include": func(name string, data interface{}) (string, error) {
			if included[name] > 1000 {
				return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
			}
			included[name]++
			defer func() { included[name]-- }()
			var buf strings.Builder
			err := root.ExecuteTemplate(&buf, name, data)
			return buf.String(), err
		},
		"tpl": func(text string, data interface{}) (string, error) {
			clone, err := root.Clone()
			if err != nil {
				return "", err
			}
			t, err := clone.New("tpl").Parse(text)
			if err != nil {
				return "", err
			}
			var buf strings.Builder
			if err := t.Execute(&buf, data); err != nil {
				return "", err
			}
			return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
		},
		// `helm template` talks to no cluster: lookup finds nothing.
		"lookup": func(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
			return map[string]interface{}{}, nil
		},
	}
	for k, v := range extra {
		f[k] = v
	}
	return f
}

// toYAML writes like helm's (sigs.k8s.io/yaml): sorted keys, 2-space indent, no trailing newline,
// and whole numbers without an exponent.
func toYAML(v interface{}) string {
	s, err := mustToYAML(v)
	if err != nil {
		return ""
	}
	return s
}

func mustToYAML(v interface{}) (string, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(forYAML(v)); err != nil {
		return "", err
	}
	if err := enc.Close(); err != nil {
		return "", err
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

func forYAML(v interface{}) interface{} {
	switch t := v.(type) {
	case map[string]interface{}:
		out := make(map[string]interface{}, len(t))
		for k, val := range t {
			out[k] = forYAML(val)
		}
		return out
	case []interface{}:
		out := make([]interface{}, len(t))
		for i, val := range t {
			out[i] = forYAML(val)
		}
		return out
	case float64:
		if t == float64(int64(t)) && t < 1e15 && t > -1e15 {
			return int64(t)
		}
	}
	return v
}

func fromYAML(s string) map[string]interface{} {
	m := map[string]interface{}{}
	var raw interface{}
	if err := yaml.Unmarshal([]byte(s), &raw); err != nil {
		m["Error"] = err.Error()
		return m
	}
	if parsed, ok := normalize(raw).(map[string]interface{}); ok {
		return parsed
	}
	return m
}

func fromYAMLArray(s string) []interface{} {
	var raw interface{}
	if err := yaml.Unmarshal([]byte(s), &raw); err != nil {
		return []interface{}{err.Error()}
	}
	if parsed, ok := normalize(raw).([]interface{}); ok {
		return parsed
	}
	return []interface{}{}
}

func toJSON(v interface{}) string {
	s, err := mustToJSON(v)
	if err != nil {
		return ""
	}
	return s
}

func mustToJSON(v interface{}) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

func fromJSON(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromJSONArray(s string) []interface{} {
	a := []interface{}{}
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

// files is .Files: every chart file outside templates/ and the chart's own metadata and values.
type files map[string][]byte

func (f files) Get(name string) string      { return string(f[name]) }
func (f files) GetBytes(name string) []byte { return f[name] }

func (f files) Glob(pattern string) files {
	out := files{}
	for name, content := range f {
		if globMatch(pattern, name) {
			out[name] = content
		}
	}
	return out
}

func (f files) AsConfig() string {
	m := map[string]interface{}{}
	for name, content := range f {
		m[path.Base(name)] = string(content)
	}
	return toYAML(m)
}

func (f files) AsSecrets() string {
	m := map[string]interface{}{}
	for name, content := range f {
		m[path.Base(name)] = base64.StdEncoding.EncodeToString(content)
	}
	return toYAML(m)
}

func (f files) Lines(name string) []string {
	s := string(f[name])
	if s == "" {
		return []string{}
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// globMatch is path.Match plus `**` for any number of directories, as helm's glob allows.
func globMatch(pattern, name string) bool {
	var re strings.Builder
	re.WriteString("^")
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch {
		case c == '*' && i+1 < len(pattern) && pattern[i+1] == '*':
			re.WriteString(".*")
			i++
		case c == '*':
			re.WriteString("[^/]*")
		case c == '?':
			re.WriteString("[^/]")
		default:
			re.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	re.WriteString("$")
	ok, _ := regexp.MatchString(re.String(), name)
	return ok
}

// APIVersions is .Capabilities.APIVersions: what a stock cluster serves, plus --api-versions.
type APIVersions []string

func (a APIVersions) Has(version string) bool {
	for _, v := range a {
		if v == version {
			return true
		}
	}
	return false
}

func defaultAPIVersions() APIVersions {
	return APIVersions{
		"v1", "apps/v1", "batch/v1", "autoscaling/v1", "autoscaling/v2", "policy/v1",
		"networking.k8s.io/v1", "rbac.authorization.k8s.io/v1", "storage.k8s.io/v1",
		"apps/v1/Deployment", "v1/Service", "v1/ConfigMap", "v1/Secret", "batch/v1/Job",
		"autoscaling/v2/HorizontalPodAutoscaler", "policy/v1/PodDisruptionBudget",
		"networking.k8s.io/v1/Ingress", "networking.k8s.io/v1/NetworkPolicy",
	}
}

func kubeMajorMinor(version string) (string, string) {
	parts := strings.SplitN(strings.TrimPrefix(version, "v"), ".", 3)
	if len(parts) < 2 {
		return "1", "31"
	}
	return parts[0], parts[1]
}

func loadChartFiles(dir string) (files, map[string]string, error) {
	ignore := readHelmignore(filepath.Join(dir, ".helmignore"))
	f := files{}
	templates := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if ignored(ignore, rel, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if rel == "charts" {
				return filepath.SkipDir
			}
			return nil
		}
		content, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(rel, "templates/"):
			templates[strings.TrimPrefix(rel, "templates/")] = string(content)
		case rel == "Chart.yaml" || rel == "Chart.lock" || rel == "values.yaml" || rel == "values.schema.json":
		default:
			f[rel] = content
		}
		return nil
	})
	return f, templates, err
}

func readHelmignore(file string) []string {
	content, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	var patterns []string
	for _, line := range strings.Split(string(content), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, line)
		}
	}
	return patterns
}

func ignored(patterns []string, rel string, isDir bool) bool {
	for _, p := range patterns {
		dirOnly := strings.HasSuffix(p, "/")
		p = strings.TrimSuffix(p, "/")
		if dirOnly && !isDir {
			continue
		}
		if ok, _ := path.Match(p, rel); ok {
			return true
		}
		if ok, _ := path.Match(p, path.Base(rel)); ok && !strings.Contains(p, "/") {
			return true
		}
	}
	return false
}

// splitManifests splits one rendered file into its YAML documents, dropping blank ones.
var separator = regexp.MustCompile(`(?m)^---[ \t]*$`)

func splitManifests(rendered string) []string {
	var docs []string
	for _, doc := range separator.Split(rendered, -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		docs = append(docs, strings.Trim(doc, "\n"))
	}
	return docs
}

var (
	execLocation = regexp.MustCompile(`^template: ([^:]+:\d+:\d+): `)
	execCalling  = regexp.MustCompile(`error calling \w+: `)
)

// cleanExecError shortens text/template's error the way helm does: where the outermost template
// failed, and the innermost message (e.g. the text a `required` gave).
func cleanExecError(err error) error {
	msg := err.Error()
	location := execLocation.FindStringSubmatch(msg)
	calls := execCalling.FindAllStringIndex(msg, -1)
	if location == nil || calls == nil {
		return err
	}
	return fmt.Errorf("execution error at (%s): %s", location[1], msg[calls[len(calls)-1][1]:])
}

func readYAMLMap(file string) (map[string]interface{}, error) {
	content, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var raw interface{}
	if err := yaml.Unmarshal(content, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if raw == nil {
		return map[string]interface{}{}, nil
	}
	m, ok := normalize(raw).(map[string]interface{})
	if !ok {
		return nil, fmt.Errorf("%s: not a map of values", file)
	}
	return m, nil
}

// normalize gives YAML the types helm's values have: numbers are float64 (helm reads YAML through
// JSON), maps have string keys.
func normalize(v interface{}) interface{} {
	switch t := v.(type) {
	case map[string]interface{}:
		for k, val := range t {
			t[k] = normalize(val)
		}
		return t
	case map[interface{}]interface{}:
		out := make(map[string]interface{}, len(t))
		for k, val := range t {
			out[fmt.Sprint(k)] = normalize(val)
		}
		return out
	case []interface{}:
		for i, val := range t {
			t[i] = normalize(val)
		}
		return t
	case int:
		return float64(t)
	case int64:
		return float64(t)
	case uint64:
		return float64(t)
	}
	return v
}

// mergeValues lays override over base as helm does: maps merge key by key, anything else replaces,
// and an explicit null removes the key.
func mergeValues(base, override map[string]interface{}) map[string]interface{} {
	out := copyMap(base)
	for k, v := range override {
		if v == nil {
			delete(out, k)
			continue
		}
		if vm, ok := v.(map[string]interface{}); ok {
			if bm, ok := out[k].(map[string]interface{}); ok {
				out[k] = mergeValues(bm, vm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

func copyMap(m map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// applySet handles `a.b.c=value[,d=value]`; no list indices or escapes.
func applySet(values map[string]interface{}, expr string, asString bool) error {
	for _, pair := range strings.Split(expr, ",") {
		eq := strings.Index(pair, "=")
		if eq <= 0 {
			return fmt.Errorf("--set %q: want key=value", pair)
		}
		keys := strings.Split(pair[:eq], ".")
		var value interface{} = pair[eq+1:]
		if !asString {
			value = typedValue(pair[eq+1:])
		}
		m := values
		for _, k := range keys[:len(keys)-1] {
			next, ok := m[k].(map[string]interface{})
			if !ok {
				next = map[string]interface{}{}
			} else {
				next = copyMap(next)
			}
			m[k] = next
			m = next
		}
		if value == nil {
			delete(m, keys[len(keys)-1])
		} else {
			m[keys[len(keys)-1]] = value
		}
	}
	return nil
}

func typedValue(s string) interface{} {
	switch s {
	case "true":
		return true
	case "false":
		return false
	case "null":
		return nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && (s == "0" || !strings.HasPrefix(s, "0")) {
		return n
	}
	return s
}

var chartKeys = map[string]string{
	"apiVersion": "APIVersion", "name": "Name", "version": "Version", "appVersion": "AppVersion",
	"description": "Description", "type": "Type", "kubeVersion": "KubeVersion", "keywords": "Keywords",
	"home": "Home", "sources": "Sources", "maintainers": "Maintainers", "icon": "Icon",
	"annotations": "Annotations", "deprecated": "Deprecated", "dependencies": "Dependencies",
}

// chartMetadata is .Chart: Chart.yaml's fields under helm's capitalised names.
func chartMetadata(raw map[string]interface{}) map[string]interface{} {
	out := map[string]interface{}{}
	for yamlKey, goKey := range chartKeys {
		if v, ok := raw[yamlKey]; ok {
			if f, isNumber := v.(float64); isNumber {
				v = strconv.FormatFloat(f, 'f', -1, 64)
			}
			out[goKey] = v
		} else if goKey != "Keywords" && goKey != "Sources" && goKey != "Maintainers" && goKey != "Annotations" && goKey != "Dependencies" {
			out[goKey] = ""
		}
	}
	return out
}
