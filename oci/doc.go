// Package oci makes the OCI runtime spec of a berth container: docker's
// defaults, the image's config and the user's options, from docker's own
// API types (container.Config and container.HostConfig).
//
// The engine calls, in order:
//
//   - [Merge] at create time, to merge the image's config into the
//     user's container.Config with docker's rules (the result is what
//     inspect shows);
//   - [Hosts] and [ResolvConf] to write the container's /etc/hosts and
//     /etc/resolv.conf on the host;
//   - [Generate] at start, with the mounted rootfs, the prepared etc
//     files and the already resolved binds, volumes and tmpfs mounts, to
//     get the *specs.Spec for the runtime.
//
// Generate follows docker's defaults: the 14 default capabilities with
// --cap-add/--cap-drop; new pid, ipc, uts, mount and network namespaces
// (none for --network host), a cgroup namespace on cgroup v2 hosts; the
// mounts of /proc, /dev, /dev/pts, /sys, /sys/fs/cgroup, /dev/mqueue and
// /dev/shm; docker's masked and read-only paths; docker's device cgroup
// rules; resource limits with docker's validation and messages; and
// docker's default seccomp profile. Privileged containers get all
// capabilities and host devices, no masked paths and no seccomp.
//
// The seccomp profile is data: seccomp/default.json, in the OCI
// linux.seccomp form extended as docker's profiles are: "archMap" gives
// the architectures for the host's native one, and a rule applies only when
// its "includes" hold (all of caps held, GOARCH among arches, kernel at
// least minKernel) and its "excludes" do not (none of caps held, GOARCH
// not among arches). Generate resolves these against the container's final
// capability set. --security-opt seccomp=<file or JSON> takes a profile in
// the same form, that is the OCI form or docker's.
//
// The pieces Generate is made of are exported for the engine's other
// uses (docker exec, docker update): [ResolveUser], [ResolveUserHome] and
// [ResolveGroups] read /etc/passwd and /etc/group inside the rootfs
// without following any symlink out of it; [Capabilities] applies
// --cap-add/--cap-drop; [Resources] converts and validates limits;
// [Devices] and [DefaultDeviceRules] give linux.devices and the device
// cgroup rules; [DefaultSeccomp] resolves the default profile for a
// capability set.
//
// Not supported yet, with errors saying so: --add-host host-gateway, the
// container:<id> pid and ipc modes, network modes other than host, none
// and default without Input.NetNSPath. Swap limits are always set (docker
// drops them on hosts without swap accounting).
package oci
