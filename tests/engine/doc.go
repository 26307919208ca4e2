// Package engine holds end-to-end tests of berth's engine: real
// containers run through the berth CLI, as users run them. TestMain
// builds berth with scripts/build.sh, makes the busybox test image with
// ../shared/images and loads it into a store of its own.
package engine
