package main

import (
	"flag"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// Docker cannot run where the tests run, so these tests read
// docker-compose.yml and the Dockerfile and check them against the code:
// every consentd flag and CONSENTD_ variable they use exists and
// validates, and the NATS nodes form a JetStream cluster that fsyncs.

const repoRoot = "../.."

// composeFile is the part of a compose file these tests read.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string      `yaml:"image"`
	Build       any         `yaml:"build"`
	Command     stringList  `yaml:"command"`
	Environment environment `yaml:"environment"`
	Volumes     []string    `yaml:"volumes"`
	DependsOn   []string    `yaml:"depends_on"`
}

// stringList is a command: a list, or one string split on spaces.
type stringList []string

func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = strings.Fields(n.Value)
		return nil
	}
	return n.Decode((*[]string)(l))
}

// environment is a service's environment: a map, or a list of NAME=VALUE.
type environment []string

func (e *environment) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		var m map[string]string
		if err := n.Decode(&m); err != nil {
			return err
		}
		for k, v := range m {
			*e = append(*e, k+"="+v)
		}
		slices.Sort(*e)
		return nil
	}
	return n.Decode((*[]string)(e))
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	require.NoError(t, err)
	var f composeFile
	require.NoError(t, yaml.Unmarshal(data, &f))
	return f
}

// dockerfileEnv returns the ENV the Dockerfile sets in its final image.
func dockerfileEnv(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	require.NoError(t, err)
	var env []string
	for line := range strings.Lines(string(data)) {
		if strings.HasPrefix(line, "FROM ") {
			env = nil // only the last stage counts
		}
		if rest, ok := strings.CutPrefix(line, "ENV "); ok {
			env = append(env, strings.Fields(rest)...)
		}
	}
	return env
}

// mountedAt reports whether a service mounts a volume at dir.
func mountedAt(s composeService, dir string) bool {
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == dir {
			return true
		}
	}
	return false
}

func isConsentd(s composeService) bool { return s.Build != nil }

func isNATS(s composeService) bool { return strings.HasPrefix(s.Image, "nats:") }

func TestComposeConsentdFlagsAndVariablesExist(t *testing.T) {
	f := readCompose(t)
	imageEnv := dockerfileEnv(t)
	require.Contains(t, imageEnv, "CONSENTD_DATA_DIR=/data")

	var consentds []string
	for name, s := range f.Services {
		if !isConsentd(s) {
			continue
		}
		consentds = append(consentds, name)
		t.Run(name, func(t *testing.T) {
			for _, arg := range s.Command {
				if flagName, ok := strings.CutPrefix(arg, "--"); ok {
					flagName, _, _ = strings.Cut(flagName, "=")
					assert.NotNil(t, newFlagSet(&Config{}, io.Discard).Lookup(flagName), "consentd has no flag --%s", flagName)
				}
			}
			known := map[string]bool{}
			newFlagSet(&Config{}, io.Discard).VisitAll(func(fl *flag.Flag) { known[envName(fl.Name)] = true })
			for _, kv := range s.Environment {
				name, _, _ := strings.Cut(kv, "=")
				if strings.HasPrefix(name, envPrefix) {
					assert.True(t, known[name], "consentd reads no variable %s", name)
				}
			}

			// The whole configuration parses and validates as consentd would.
			m := NewMain()
			m.Stderr = io.Discard
			m.Environ = func() []string { return append(slices.Clone(imageEnv), s.Environment...) }
			require.NoError(t, m.ParseFlags(s.Command))
			cfg := m.Config
			assert.False(t, cfg.Embedded(), "joins the NATS cluster")
			assert.Equal(t, 3, cfg.Replicas)
			assert.True(t, mountedAt(s, cfg.DataDir), "a volume at --data-dir %s", cfg.DataDir)
			for _, u := range strings.Split(cfg.NATSURL, ",") {
				parsed, err := url.Parse(u)
				require.NoError(t, err)
				assert.True(t, isNATS(f.Services[parsed.Hostname()]), "%s is a NATS node of this file", u)
				assert.Equal(t, "4222", parsed.Port())
				assert.Contains(t, s.DependsOn, parsed.Hostname())
			}
		})
	}
	assert.Len(t, consentds, 2, "two consentd replicas")
}

func TestComposeNATSNodesFormAJetStreamClusterThatFsyncs(t *testing.T) {
	f := readCompose(t)
	var nodes []string
	for name, s := range f.Services {
		if isNATS(s) {
			nodes = append(nodes, name)
		}
	}
	slices.Sort(nodes)
	require.Len(t, nodes, 3, "three NATS nodes")

	names := map[string]bool{}
	for _, name := range nodes {
		t.Run(name, func(t *testing.T) {
			s := f.Services[name]
			args := slices.Clone([]string(s.Command))
			// Read the mounted configuration file from the repository.
			for i, arg := range args {
				if (arg == "--config" || arg == "-c") && i+1 < len(args) {
					args[i+1] = hostPath(t, s, args[i+1])
				}
			}
			for _, want := range []string{"--jetstream", "--cluster", "--routes"} {
				assert.Contains(t, args, want)
			}
			fs := flag.NewFlagSet("nats-server", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			opts, err := server.ConfigureOptions(fs, args, nil, nil, nil)
			require.NoError(t, err, "nats-server accepts the command line")

			assert.True(t, opts.JetStream)
			assert.True(t, opts.SyncAlways, "sync_interval: always")
			assert.True(t, mountedAt(s, opts.StoreDir), "a volume at the store dir %s", opts.StoreDir)
			assert.Equal(t, "consent", opts.Cluster.Name)
			assert.Equal(t, 6222, opts.Cluster.Port)
			assert.False(t, names[opts.ServerName], "server names are unique")
			names[opts.ServerName] = true
			var routed []string
			for _, r := range opts.Routes {
				routed = append(routed, r.Hostname())
				assert.Equal(t, "6222", r.Port())
			}
			slices.Sort(routed)
			assert.Equal(t, nodes, routed, "routes to every node")
		})
	}
}

// hostPath maps a path inside a service's container to the repository
// file mounted there.
func hostPath(t *testing.T, s composeService, inContainer string) string {
	t.Helper()
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == inContainer && strings.HasPrefix(parts[0], ".") {
			return filepath.Join(repoRoot, parts[0])
		}
	}
	t.Fatalf("nothing from the repository is mounted at %s", inContainer)
	return ""
}

func TestDockerfileBuildsBothCommandsInStages(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	require.NoError(t, err)
	dockerfile := string(data)
	assert.Len(t, regexp.MustCompile(`(?m)^FROM `).FindAllString(dockerfile, -1), 2, "multi-stage")
	assert.Contains(t, dockerfile, "./cmd/consentd")
	assert.Contains(t, dockerfile, "./cmd/consentctl")
	assert.Regexp(t, `(?m)^ENTRYPOINT \["/usr/local/bin/consentd"\]$`, dockerfile)
	assert.Regexp(t, `(?m)^USER nonroot$`, dockerfile)
}
