// Package volume keeps berth's named and anonymous volumes with docker's
// "local" driver: a volume is a directory on the host, ROOT/volumes/NAME/_data
// (docker's layout), with its record beside it in ROOT/volumes/NAME/volume.json.
//
// There is no daemon: many berth processes use one store at once. Every
// change is a single rename, so readers see a volume whole or not at all,
// and two processes creating one name end up with one volume.
//
// Seed fills a new volume from an image's directory, as docker does when
// a volume is first mounted over content the image has there.
package volume
