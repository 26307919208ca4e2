// Package testbuild builds the berth binary for the end-to-end tests
// (tests/...), which run it as users do.
package testbuild

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Berth builds berth with the repository's scripts/build.sh into dir and
// returns the binary's path. The repository is the nearest directory with
// a go.mod at or above the working directory (a test's package directory).
func Berth(dir string) (string, error) {
	repo, err := repoRoot()
	if err != nil {
		return "", err
	}
	build := exec.Command("bash", filepath.Join(repo, "scripts", "build.sh"), dir)
	build.Dir = repo
	build.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":"+filepath.Join(runtime.GOROOT(), "bin"))
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("scripts/build.sh: %v\n%s", err, out)
	}
	return filepath.Join(dir, "berth"), nil
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod at or above the working directory")
		}
		dir = parent
	}
}
