//go:build !race

package admission

// applyRounds is the number of timed applies of each kind.
const applyRounds = 400
