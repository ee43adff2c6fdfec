//go:build race

package analysis

// raceEnabled shortens the simulations under the race detector, which
// slows their arithmetic tenfold and adds nothing to it.
const raceEnabled = true
