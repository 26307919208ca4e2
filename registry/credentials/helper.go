package credentials

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// helperPrefix begins the name of every credential helper executable.
const helperPrefix = "docker-credential-"

// notFoundMessage is what helpers print for a missing login.
const notFoundMessage = "credentials not found in native keychain"

// tokenUsername is the user name helpers store identity tokens under.
const tokenUsername = "<token>"

// errHelperNotFound is returned by runHelper when the helper has no login.
var errHelperNotFound = errors.New(notFoundMessage)

// helperCreds is the JSON helpers read for "store" and print for "get".
type helperCreds struct {
	ServerURL string `json:"ServerURL"`
	Username  string `json:"Username"`
	Secret    string `json:"Secret"`
}

// runHelper runs docker-credential-name with action, feeding it input, and
// returns its standard output.
func runHelper(ctx context.Context, name, action string, input []byte) ([]byte, error) {
	prog := helperPrefix + name
	cmd := exec.CommandContext(ctx, prog, action)
	cmd.Stdin = bytes.NewReader(input)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("credential helper %s %s: %w", prog, action, ctx.Err())
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) &&
		(strings.Contains(stdout.String(), notFoundMessage) || strings.Contains(stderr.String(), notFoundMessage)) {
		return nil, errHelperNotFound
	}
	msg := strings.TrimSpace(stderr.String())
	if out := strings.TrimSpace(stdout.String()); out != "" {
		// Docker's helpers report their errors on stdout.
		if msg != "" {
			msg += "; "
		}
		msg += out
	}
	if msg != "" {
		return nil, fmt.Errorf("credential helper %s %s: %w: %s", prog, action, err, msg)
	}
	return nil, fmt.Errorf("credential helper %s %s: %w", prog, action, err)
}

// helperGet asks helper name for host's login; none is the zero
// Credential.
func helperGet(ctx context.Context, name, host string) (Credential, error) {
	out, err := runHelper(ctx, name, "get", []byte(serverURL(host)))
	if errors.Is(err, errHelperNotFound) {
		return Credential{}, nil
	}
	if err != nil {
		return Credential{}, fmt.Errorf("get credentials for %s: %w", host, err)
	}
	var hc helperCreds
	if err := json.Unmarshal(out, &hc); err != nil {
		return Credential{}, fmt.Errorf("get credentials for %s: credential helper %s%s get: bad output: %w", host, helperPrefix, name, err)
	}
	if hc.Username == tokenUsername {
		return Credential{IdentityToken: hc.Secret}, nil
	}
	return Credential{Username: hc.Username, Password: hc.Secret}, nil
}

// helperStore stores cred for host through helper name.
func helperStore(ctx context.Context, name, host string, cred Credential) error {
	hc := helperCreds{ServerURL: serverURL(host), Username: cred.Username, Secret: cred.Password}
	if cred.IdentityToken != "" {
		hc.Username, hc.Secret = tokenUsername, cred.IdentityToken
	}
	in, err := json.Marshal(hc)
	if err != nil {
		return err
	}
	if _, err := runHelper(ctx, name, "store", in); err != nil {
		return fmt.Errorf("store credentials for %s: %w", host, err)
	}
	return nil
}

// helperErase erases host's login through helper name.
func helperErase(ctx context.Context, name, host string) error {
	_, err := runHelper(ctx, name, "erase", []byte(serverURL(host)))
	if errors.Is(err, errHelperNotFound) {
		return fmt.Errorf("erase credentials for %s: %w", host, ErrNotLoggedIn)
	}
	if err != nil {
		return fmt.Errorf("erase credentials for %s: %w", host, err)
	}
	return nil
}
