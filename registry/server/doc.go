// Package server is berth's registry server: the OCI distribution
// specification v1.1 over berth's content-store format.
package server
