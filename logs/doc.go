// Package logs reads containers' logs in docker's json-file format: one
// JSON object a line, {"log":"text\n","stream":"stdout","time":"..."},
// written by berth's container monitor into LOG and rotated to LOG.1 (the
// newest rotated file) ... LOG.N.
//
// Read gives the entries oldest first across the rotated files, with
// docker's --tail, --since, --until and --follow; it survives rotation
// while following and skips the partial line a crash leaves behind.
// ParseTime reads docker's --since/--until values and Write prints an
// entry as docker logs does.
package logs
