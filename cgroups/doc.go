// Package cgroups manages the control group of a container on hosts that
// mount cgroup v1 (legacy or hybrid) and on hosts with a pure cgroup v2
// (unified) hierarchy, behind one Manager interface.
//
// The runtime's parent process (running in the host namespaces) creates a
// Manager with New, places the container's init process with Apply, sets
// the OCI linux.resources with Set and saves Manager.Paths in the
// container's state so that later commands can re-open it with Load.
//
// Paths follow runc's cgroupfs driver: an absolute linux.cgroupsPath is
// relative to the root of every hierarchy, a relative one is relative to
// the cgroup of the calling process, and an empty one means the container
// ID relative to the calling process's cgroup.
package cgroups
