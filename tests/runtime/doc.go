// Package runtime holds the end-to-end tests of berth's OCI runtime: they
// build cmd/berth, run it as berth-runc against a busybox bundle and check
// what the kernel shows from inside and outside the containers. They must
// run as root; see main_test.go for what the package sets up once.
package runtime
