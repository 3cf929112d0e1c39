package audit_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// serverProcessEnv, when set to a directory, makes the test binary run a
// NATS server with JetStream storing there instead of the tests: the
// memory tests measure the client alone, with the server in a process of
// its own.
const serverProcessEnv = "AUDIT_TEST_NATS_SERVER_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(serverProcessEnv); dir != "" {
		os.Exit(runServerProcess(dir))
	}
	os.Exit(m.Run())
}

// runServerProcess serves until its standard input closes, after printing
// the client URL on a line of its own.
func runServerProcess(dir string) int {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		fmt.Fprintln(os.Stderr, "server not ready")
		return 1
	}
	fmt.Println(s.ClientURL())
	_, _ = io.Copy(io.Discard, os.Stdin)
	s.Shutdown()
	s.WaitForShutdown()
	return 0
}

// startServerProcess runs a NATS server in a child process and returns its
// client URL; the server stops at the end of the test.
func startServerProcess(t testing.TB) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serverProcessEnv+"="+t.TempDir())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- strings.TrimSpace(line)
	}()
	select {
	case url := <-lines:
		if !strings.HasPrefix(url, "nats://") {
			t.Fatalf("server process printed %q, want its URL", url)
		}
		return url
	case <-time.After(20 * time.Second):
		t.Fatal("server process did not start in 20s")
	}
	return ""
}
