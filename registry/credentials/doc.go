// Package credentials reads and writes the user's registry logins in
// docker's format, so that logins made with docker, podman (through
// $REGISTRY_AUTH_FILE) or berth work for all of them.
//
// The file is docker's config.json:
//
//	{
//		"auths": {
//			"https://index.docker.io/v1/": {"auth": "base64(user:password)"},
//			"localhost:5000": {"username": "u", "password": "p"},
//			"quay.io": {"identitytoken": "..."}
//		},
//		"credsStore": "pass",
//		"credHelpers": {"gcr.io": "gcloud"}
//	}
//
// For a registry host, a credHelpers entry wins, then credsStore, then the
// auths entry. Credential helpers are the executables
// docker-credential-NAME in $PATH, spoken to with docker's protocol: the
// action ("get", "store" or "erase") as argument, the server URL or a JSON
// {"ServerURL","Username","Secret"} on stdin. A helper stores an identity
// token under the user name "<token>".
//
// Docker Hub is known under many names; "docker.io", "index.docker.io",
// "registry-1.docker.io" and "https://index.docker.io/v1/" all find the
// same login, and a new login is written under the last, as docker does.
// Keys written with a scheme or a trailing /v1/ or /v2/ are accepted for
// any host.
//
// [Store.Put] and [Store.Erase] rewrite the file atomically with mode
// 0600, keeping every other field of it as it was.
package credentials
