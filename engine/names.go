package engine

import (
	"math/rand/v2"
	"strconv"
)

// Words for the names berth gives containers created without --name,
// "adjective_noun" in docker's manner; berth's own lists, of the sea.
var (
	nameAdjectives = []string{"amber", "brave", "briny", "calm", "clever", "coral", "dauntless", "deep", "eager",
		"fair", "gentle", "gleaming", "hardy", "idle", "jolly", "keen", "lucid", "merry", "misty", "nimble",
		"patient", "quiet", "rapid", "restless", "salty", "serene", "silver", "steady", "stormy", "swift",
		"tidal", "trusty", "vivid", "wandering", "windward", "zesty"}
	nameNouns = []string{"albatross", "anchor", "atoll", "ballast", "barnacle", "beacon", "bollard", "bosun",
		"bowline", "breakwater", "buoy", "capstan", "compass", "corsair", "cove", "cutter", "dinghy", "dolphin",
		"ferry", "fjord", "galley", "gull", "harbor", "hawser", "jetty", "keel", "lagoon", "lighthouse",
		"mariner", "mooring", "narwhal", "otter", "pelican", "pier", "quay", "reef", "schooner", "sextant",
		"skiff", "tern", "tide", "trawler", "wharf"}
)

// randomName returns a name for a container; numbered adds a digit, for
// retries after a collision.
func randomName(numbered bool) string {
	n := nameAdjectives[rand.IntN(len(nameAdjectives))] + "_" + nameNouns[rand.IntN(len(nameNouns))]
	if numbered {
		n += strconv.Itoa(rand.IntN(10))
	}
	return n
}
