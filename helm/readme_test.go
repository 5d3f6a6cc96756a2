package helm

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"go.yaml.in/yaml/v3"
)

var updateReadme = flag.Bool("update-readme", false, "rewrite the values table of zulip-bridge/README.md from values.yaml")

const (
	readmePath   = "zulip-bridge/README.md"
	valuesPath   = "zulip-bridge/values.yaml"
	schemaPath   = "zulip-bridge/values.schema.json"
	tableBegin   = "<!-- values-table:begin -->"
	tableEnd     = "<!-- values-table:end -->"
	docCommentRe = `(?s)^#\s*--\s*(.*)$`
)

// valueDoc is one documented value of values.yaml.
type valueDoc struct {
	path, typ, def, desc string
}

// schemaNode is the part of a JSON schema the checks read.
type schemaNode struct {
	Type                 any                    `json:"type"`
	Comment              string                 `json:"$comment"`
	Properties           map[string]*schemaNode `json:"properties"`
	AdditionalProperties any                    `json:"additionalProperties"`
	Items                *schemaNode            `json:"items"`
	AllOf                []*schemaNode          `json:"allOf"`
	OneOf                []*schemaNode          `json:"oneOf"`
	If                   *schemaNode            `json:"if"`
	Then                 *schemaNode            `json:"then"`
	Not                  *schemaNode            `json:"not"`
}

func loadSchema(t *testing.T) *schemaNode {
	t.Helper()
	var s schemaNode
	if err := json.Unmarshal([]byte(readFile(t, schemaPath)), &s); err != nil {
		t.Fatalf("%s: %v", schemaPath, err)
	}
	return &s
}

// valueDocs walks values.yaml: a key with a "# --" comment is a value (documented in
// the README), any other key must be a group of values. Each group has exactly the
// properties the schema gives it, so values.yaml and the schema cannot drift apart.
func valueDocs(t *testing.T, schema *schemaNode) []valueDoc {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(readFile(t, valuesPath)), &root); err != nil {
		t.Fatalf("%s: %v", valuesPath, err)
	}
	re := regexp.MustCompile(docCommentRe)
	var docs []valueDoc
	var walk func(prefix string, m *yaml.Node, s *schemaNode)
	walk = func(prefix string, m *yaml.Node, s *schemaNode) {
		var keys []string
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			path := prefix + k.Value
			keys = append(keys, k.Value)
			sub := s.Properties[k.Value]
			if sub == nil {
				t.Errorf("%s: not in %s", path, schemaPath)
				continue
			}
			if c := re.FindStringSubmatch(strings.TrimSpace(lastComment(k.HeadComment))); c != nil {
				def, err := defaultOf(v)
				if err != nil {
					t.Errorf("%s: %v", path, err)
				}
				docs = append(docs, valueDoc{path, typeOf(sub), def, strings.Join(strings.Fields(c[1]), " ")})
				continue
			}
			if v.Kind != yaml.MappingNode || len(v.Content) == 0 {
				t.Errorf("%s: no \"# --\" comment documenting it", path)
				continue
			}
			walk(path+".", v, sub)
		}
		var want []string
		for k := range s.Properties {
			want = append(want, k)
		}
		slices.Sort(keys)
		slices.Sort(want)
		if !slices.Equal(keys, want) {
			t.Errorf("%s: values.yaml has keys %v, the schema %v", cmpOrRoot(prefix), keys, want)
		}
	}
	walk("", root.Content[0], schema)
	return docs
}

func cmpOrRoot(prefix string) string {
	if prefix == "" {
		return "(top level)"
	}
	return strings.TrimSuffix(prefix, ".")
}

// lastComment is the last paragraph of a head comment: values.yaml separates section
// comments from a value's own comment with a blank line.
func lastComment(c string) string {
	parts := strings.Split(c, "\n\n")
	doc := parts[len(parts)-1]
	// Join continuation lines ("# more text") into the "# --" line.
	lines := strings.Split(doc, "\n")
	for i, l := range lines {
		if i > 0 {
			lines[i] = strings.TrimPrefix(strings.TrimSpace(l), "#")
		}
	}
	return strings.Join(lines, " ")
}

func defaultOf(v *yaml.Node) (string, error) {
	var x any
	if err := v.Decode(&x); err != nil {
		return "", err
	}
	b, err := json.Marshal(x)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func typeOf(s *schemaNode) string {
	switch t := s.Type.(type) {
	case string:
		return t
	case []any:
		var parts []string
		for _, p := range t {
			parts = append(parts, fmt.Sprint(p))
		}
		return strings.Join(parts, " or ")
	}
	return "any"
}

// valuesTable renders the README's table of values.
func valuesTable(docs []valueDoc) string {
	var b strings.Builder
	b.WriteString(tableBegin + "\n")
	b.WriteString("| value | type | default | meaning |\n| --- | --- | --- | --- |\n")
	cell := strings.NewReplacer("|", `\|`, "\n", " ")
	for _, d := range docs {
		fmt.Fprintf(&b, "| `%s` | %s | `%s` | %s |\n", d.path, d.typ, cell.Replace(d.def), cell.Replace(d.desc))
	}
	b.WriteString(tableEnd)
	return b.String()
}

var tableRe = regexp.MustCompile(`(?s)` + regexp.QuoteMeta(tableBegin) + `.*?` + regexp.QuoteMeta(tableEnd))

// TestValuesReadme: README.md's table lists every value of values.yaml, with its type,
// default and comment, and nothing else. `go test -run TestValuesReadme -update-readme`
// rewrites it.
func TestValuesReadme(t *testing.T) {
	docs := valueDocs(t, loadSchema(t))
	if t.Failed() {
		return
	}
	want := valuesTable(docs)
	readme := readFile(t, readmePath)
	if !tableRe.MatchString(readme) {
		t.Fatalf("%s has no %s ... %s section", readmePath, tableBegin, tableEnd)
	}
	if *updateReadme {
		if err := os.WriteFile(readmePath, []byte(tableRe.ReplaceAllLiteralString(readme, want)), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got := tableRe.FindString(readme); got != want {
		gotRows, wantRows := strings.Split(got, "\n"), strings.Split(want, "\n")
		for _, r := range wantRows {
			if !slices.Contains(gotRows, r) {
				t.Errorf("README lacks: %s", r)
			}
		}
		for _, r := range gotRows {
			if !slices.Contains(wantRows, r) {
				t.Errorf("README has stale: %s", r)
			}
		}
		t.Error("README values table differs from values.yaml; run: go test -run TestValuesReadme -update-readme")
	}
}

// TestReadmeRunbooks: every alert's runbook_url points at a section of the README.
func TestReadmeRunbooks(t *testing.T) {
	readme := readFile(t, readmePath)
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(readme, -1) {
		anchors[githubAnchor(m[1])] = true
	}
	vals := merged(readValues(t, credentials), readValues(t, `prometheusRule: {enabled: true, kubeStateMetrics: true}`))
	pr := one[*monitoringv1.PrometheusRule](t, mustRender(t, vals, renderOpts{monitoring: true}))
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			_, anchor, _ := strings.Cut(r.Annotations["runbook_url"], "#")
			if !anchors[anchor] {
				t.Errorf("%s: runbook anchor #%s is no heading of %s", r.Alert, anchor, readmePath)
			}
		}
	}
	for _, a := range []string{"deploy-with-helm", "upgrade", "what-lives-on-the-persistent-volume", "secrets"} {
		if !anchors[a] {
			t.Errorf("%s has no section #%s", readmePath, a)
		}
	}
}

func githubAnchor(heading string) string {
	h := strings.ToLower(strings.TrimSpace(heading))
	h = regexp.MustCompile("[^a-z0-9 _-]").ReplaceAllString(h, "")
	return strings.ReplaceAll(h, " ", "-")
}

// TestSchemaStrict: every object in values.schema.json rejects unknown keys, or is a
// map with typed values, or is a Kubernetes object passed through as it is (said in its
// $comment), which the API server validates.
func TestSchemaStrict(t *testing.T) {
	var walk func(path string, s *schemaNode)
	walk = func(path string, s *schemaNode) {
		if s == nil {
			return
		}
		isObject := s.Type == "object" || s.Properties != nil
		if isObject {
			switch ap := s.AdditionalProperties.(type) {
			case bool:
				if ap {
					t.Errorf("%s: additionalProperties true", path)
				}
			case map[string]any:
				if len(ap) == 0 {
					t.Errorf("%s: additionalProperties {} accepts anything", path)
				}
			case nil:
				if !strings.HasPrefix(s.Comment, "Kubernetes ") {
					t.Errorf("%s: object without additionalProperties (nor a Kubernetes pass-through $comment)", path)
				}
			}
		}
		for k, p := range s.Properties {
			walk(path+"."+k, p)
		}
		walk(path+"[]", s.Items)
	}
	walk("$", loadSchema(t))
}
