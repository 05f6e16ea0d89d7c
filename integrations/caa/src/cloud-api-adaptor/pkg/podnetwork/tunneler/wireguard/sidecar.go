// (C) Copyright Confidential Containers Contributors
// SPDX-License-Identifier: Apache-2.0

package wireguard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Error is a failure reported by peerpod-wg-sidecar or peerpod-wg-agent, with the sidecar's stable
// code ("EINVAL", "ENOTFOUND", "ESTATE", "ESETUP", …), the request field at fault, if any, and
// its message, which names the netns, the interface and what would be valid.
type Error struct {
	// Op is the call: "configure", "setup", "teardown".
	Op      string
	Code    string
	Field   string
	Message string
}

func (e *Error) Error() string {
	where := ""
	if e.Field != "" {
		where = " (field " + e.Field + ")"
	}
	return fmt.Sprintf("wireguard %s: %s%s: %s", e.Op, e.Code, where, e.Message)
}

// sidecar carries one call to peerpod-wg-sidecar's API: a JSON request to a path, a JSON reply.
type sidecar interface {
	call(op, path string, request, reply any) error
}

// errorReply is the API's error body: {"error": {"code", "message", "field"}}.
type errorReply struct {
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

// decodeReply turns a reply body into `reply`, or into an *Error when the call failed.
func decodeReply(op string, ok bool, body []byte, reply any) error {
	if !ok {
		var e errorReply
		if err := json.Unmarshal(body, &e); err != nil || e.Error == nil {
			return &Error{Op: op, Code: "EBACKEND", Message: "unreadable error reply: " + firstLine(body)}
		}
		return &Error{Op: op, Code: e.Error.Code, Field: e.Error.Field, Message: e.Error.Message}
	}
	if err := json.Unmarshal(body, reply); err != nil {
		return &Error{Op: op, Code: "EBACKEND", Message: fmt.Sprintf("unreadable reply: %v", err)}
	}
	return nil
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// socketSidecar calls the daemon over its unix socket. The daemon runs on the host network next
// to CAA, so where the calling thread is does not matter.
type socketSidecar struct {
	path   string
	client *http.Client
}

func newSocketSidecar(path string, timeout time.Duration) *socketSidecar {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &socketSidecar{
		path: path,
		client: &http.Client{
			Timeout: timeout,
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return dialer.DialContext(ctx, "unix", path)
				},
			},
		},
	}
}

func (s *socketSidecar) call(op, path string, request, reply any) error {
	body, err := json.Marshal(request)
	if err != nil {
		return &Error{Op: op, Code: "EINVAL", Message: fmt.Sprintf("cannot encode the request: %v", err)}
	}
	resp, err := s.client.Post("http://peerpod-wg-sidecar"+path, "application/json", bytes.NewReader(body))
	if err != nil {
		return &Error{Op: op, Code: "EBACKEND", Message: fmt.Sprintf("peerpod-wg-sidecar does not answer on %s: %v", s.path, err)}
	}
	defer resp.Body.Close()
	text, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return &Error{Op: op, Code: "EBACKEND", Message: fmt.Sprintf("reading the reply from %s: %v", s.path, err)}
	}
	return decodeReply(op, resp.StatusCode/100 == 2, text, reply)
}

// execSidecar runs `<command> call POST <path>` for each call, with the request on stdin. The
// child starts from the calling thread, so it and the devices it creates live in that thread's
// network namespace; wireguard-go processes it starts outlive it.
type execSidecar struct {
	command string
	timeout time.Duration
}

func (s *execSidecar) call(op, path string, request, reply any) error {
	body, err := json.Marshal(request)
	if err != nil {
		return &Error{Op: op, Code: "EINVAL", Message: fmt.Sprintf("cannot encode the request: %v", err)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.command, "call", "POST", path)
	cmd.Stdin = bytes.NewReader(body)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var exit *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exit) {
		return &Error{Op: op, Code: "EBACKEND", Message: fmt.Sprintf("cannot run %s: %v", s.command, runErr)}
	}
	if runErr != nil && stdout.Len() == 0 {
		return &Error{Op: op, Code: "EBACKEND", Message: fmt.Sprintf("%s call %s: %v: %s", s.command, path, runErr, lastErrorLine(stderr.Bytes()))}
	}
	return decodeReply(op, runErr == nil, stdout.Bytes(), reply)
}

// lastErrorLine is the "error: …" line our programs print last on failure (they never print keys).
func lastErrorLine(stderr []byte) string {
	lines := strings.Split(strings.TrimSpace(string(stderr)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "error: ") {
			return strings.TrimPrefix(lines[i], "error: ")
		}
	}
	return firstLine([]byte(lines[len(lines)-1]))
}

// findProgram resolves a program from an environment variable, else from PATH.
func findProgram(envVar, name string) (string, error) {
	if p := os.Getenv(envVar); p != "" {
		return p, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("wireguard: %s not found on PATH and %s is not set: install peerpod-wireguard's %s or point %s at it", name, envVar, name, envVar)
	}
	return p, nil
}
