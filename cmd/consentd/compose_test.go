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

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/consentledger/consent/internal/auth"
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
	DependsOn   dependsOn   `yaml:"depends_on"`
	Restart     string      `yaml:"restart"`
	Healthcheck struct {
		Test stringList `yaml:"test"`
	} `yaml:"healthcheck"`
}

// dependsOn is a service's depends_on: a list of services, or a map of
// service to its condition.
type dependsOn map[string]string

func (d *dependsOn) UnmarshalYAML(n *yaml.Node) error {
	*d = dependsOn{}
	if n.Kind == yaml.SequenceNode {
		var names []string
		if err := n.Decode(&names); err != nil {
			return err
		}
		for _, name := range names {
			(*d)[name] = "service_started"
		}
		return nil
	}
	var m map[string]struct {
		Condition string `yaml:"condition"`
	}
	if err := n.Decode(&m); err != nil {
		return err
	}
	for name, c := range m {
		(*d)[name] = c.Condition
	}
	return nil
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

// consentdImage is the image of consentd that docker-compose.yml builds,
// once, and every consentd service runs.
const consentdImage = "consent-ledger/consentd:dev"

// isConsentd reports whether a service runs the consentd daemon.
func isConsentd(s composeService) bool { return s.Image == consentdImage && !isNATSConfig(s) }

// isNATSConfig reports whether a service runs consentd nats-config.
func isNATSConfig(s composeService) bool {
	return s.Image == consentdImage && len(s.Command) > 0 && s.Command[0] == "nats-config"
}

// authInit returns the one service that runs consentd nats-config, and
// the values of its flags.
func authInit(t *testing.T, f composeFile) (name string, s composeService, flags map[string]string) {
	t.Helper()
	for n, svc := range f.Services {
		if isNATSConfig(svc) {
			require.Empty(t, name, "one service runs consentd nats-config")
			name, s = n, svc
		}
	}
	require.NotEmpty(t, name, "a service runs consentd nats-config")
	flags = map[string]string{}
	args := s.Command[1:]
	for i := 0; i+1 < len(args); i += 2 {
		flags[args[i]] = args[i+1]
	}
	return name, s, flags
}

// inVolume returns the named volume a path inside a service's container
// is on, and the path within that volume.
func inVolume(t *testing.T, s composeService, inContainer string) (volume, rel string) {
	t.Helper()
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || strings.HasPrefix(parts[0], ".") || strings.HasPrefix(parts[0], "/") {
			continue
		}
		if r, err := filepath.Rel(parts[1], inContainer); err == nil && !strings.HasPrefix(r, "..") {
			return parts[0], r
		}
	}
	t.Fatalf("%s is on no named volume of the service", inContainer)
	return "", ""
}

// mountOf returns where a service mounts the named volume.
func mountOf(t *testing.T, s composeService, volume string) string {
	t.Helper()
	for _, v := range s.Volumes {
		if parts := strings.Split(v, ":"); len(parts) >= 2 && parts[0] == volume {
			return parts[1]
		}
	}
	t.Fatalf("the service does not mount the volume %s", volume)
	return ""
}

// argOrEnv returns the value of a consentd flag in a service's command,
// or else of its variable.
func argOrEnv(s composeService, flagName string) string {
	for i, arg := range s.Command {
		if arg == "--"+flagName && i+1 < len(s.Command) {
			return s.Command[i+1]
		}
	}
	for _, kv := range s.Environment {
		if v, ok := strings.CutPrefix(kv, envName(flagName)+"="); ok {
			return v
		}
	}
	return ""
}

func isNATS(s composeService) bool { return strings.HasPrefix(s.Image, "nats:") }

func TestComposeConsentdFlagsAndVariablesExist(t *testing.T) {
	f := readCompose(t)
	imageEnv := dockerfileEnv(t)
	require.Contains(t, imageEnv, "CONSENTD_DATA_DIR=/data")

	initName, initService, initFlags := authInit(t, f)
	authVolume, authRel := inVolume(t, initService, initFlags["--auth-dir"])
	_, outRel := inVolume(t, initService, initFlags["--out"])
	var consentds []string
	for name, s := range f.Services {
		if !isConsentd(s) {
			continue
		}
		consentds = append(consentds, name)
		t.Run(name, func(t *testing.T) {
			// The authority auth-init created, shared, and its user of SVC.
			volume, rel := inVolume(t, s, argOrEnv(s, "auth-dir"))
			assert.Equal(t, authVolume, volume, "--auth-dir is on the volume of %s", initName)
			assert.Equal(t, authRel, rel, "--auth-dir is the --auth-dir of %s", initName)
			// Every instance seals with the same KEK: the file on the shared volume.
			volume, rel = inVolume(t, s, argOrEnv(s, "kek-file"))
			assert.Equal(t, authVolume, volume, "--kek-file is on the volume of %s", initName)
			assert.Equal(t, "kek", rel, "--kek-file is the shared one")
			volume, rel = inVolume(t, s, argOrEnv(s, "nats-creds"))
			assert.Equal(t, authVolume, volume, "--nats-creds is on the volume of %s", initName)
			assert.Equal(t, filepath.Join(outRel, "consentd.creds"), rel, "--nats-creds is the consentd.creds of %s", initName)

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

// TestComposeBuildsTheImageOnce: one service builds consentd's image and
// the others run it, so docker compose up --build builds it once.
func TestComposeBuildsTheImageOnce(t *testing.T) {
	f := readCompose(t)
	var builders, users []string
	for name, s := range f.Services {
		if s.Build != nil {
			builders = append(builders, name)
			assert.Equal(t, consentdImage, s.Image, "%s tags what it builds as the image the others run", name)
		}
		if s.Image == consentdImage {
			users = append(users, name)
		}
	}
	assert.Len(t, builders, 1, "only one service has build: %v", builders)
	assert.Len(t, users, 3, "auth-init and two consentd replicas run the image: %v", users)
}

func TestComposeAuthInitRunsNATSConfigOnce(t *testing.T) {
	f := readCompose(t)
	_, s, flags := authInit(t, f)
	assert.Len(t, s.Command, 7, "nats-config with --auth-dir, --out and --resolver-dir")
	for _, name := range []string{"--auth-dir", "--out", "--resolver-dir"} {
		assert.NotEmpty(t, flags[name], name)
	}
	// It writes into a volume that starts owned by the image's user.
	assert.Equal(t, "/data", mountOf(t, s, "auth"))
	// The arguments are what nats-config accepts.
	dir := t.TempDir()
	code, _, stderr := natsConfig("--auth-dir", filepath.Join(dir, "auth"), "--out", filepath.Join(dir, "out"), "--resolver-dir", flags["--resolver-dir"])
	assert.Equal(t, 0, code, stderr)
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

	initName, initService, initFlags := authInit(t, f)
	authVolume, authRel := inVolume(t, initService, initFlags["--auth-dir"])
	_, outRel := inVolume(t, initService, initFlags["--out"])
	names := map[string]bool{}
	for _, name := range nodes {
		t.Run(name, func(t *testing.T) {
			s := f.Services[name]
			assert.Equal(t, "service_completed_successfully", s.DependsOn[initName], "starts once %s wrote accounts.conf", initName)
			// The node's files as the container sees them, under root: the
			// configuration file from the repository, and the volume of
			// auth-init where the node mounts it, with what nats-config
			// writes there.
			root := t.TempDir()
			args := slices.Clone([]string(s.Command))
			for i, arg := range args {
				if (arg == "--config" || arg == "-c") && i+1 < len(args) {
					data, err := os.ReadFile(hostPath(t, s, args[i+1]))
					require.NoError(t, err)
					args[i+1] = filepath.Join(root, args[i+1])
					require.NoError(t, os.MkdirAll(filepath.Dir(args[i+1]), 0o700))
					require.NoError(t, os.WriteFile(args[i+1], data, 0o600))
				}
			}
			volumeRoot := filepath.Join(root, mountOf(t, s, authVolume))
			resolverDir := initFlags["--resolver-dir"]
			code, _, stderr := natsConfig("--auth-dir", filepath.Join(volumeRoot, authRel), "--out", filepath.Join(volumeRoot, outRel),
				"--resolver-dir", filepath.Join(root, resolverDir))
			require.Equal(t, 0, code, stderr)
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
			// The accounts nats-config wrote: the operator, SYS, and a
			// full resolver on the node's own volume.
			a, err := auth.Open(filepath.Join(volumeRoot, authRel))
			require.NoError(t, err)
			require.Len(t, opts.TrustedOperators, 1)
			op, err := jwt.DecodeOperatorClaims(a.OperatorJWT())
			require.NoError(t, err)
			assert.Equal(t, op.Subject, opts.TrustedOperators[0].Subject)
			assert.Equal(t, a.SystemAccountKey(), opts.SystemAccount)
			assert.IsType(t, &server.DirAccResolver{}, opts.AccountResolver)
			assert.True(t, strings.HasPrefix(resolverDir, opts.StoreDir+"/"), "the resolver directory %s is on the node's volume", resolverDir)
			assert.DirExists(t, filepath.Join(root, resolverDir))
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
