//go:build race

package admission

// applyRounds is the number of timed applies of each kind: the race
// detector slows serin and the figures mean little, so the minimum.
const applyRounds = 200
