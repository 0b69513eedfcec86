package main

import (
	"hash/fnv"
)

// route returns the index of the primary an automation lives on: rendezvous
// (highest random weight) hashing of its name against the primaries' names.
// It depends only on the names, so every process computes the same answer,
// and adding a primary moves only the automations the new one wins (about
// 1/N of them), where hash modulo N would move most.
func route(automation string, primaries []string) int {
	best, bestW := 0, uint64(0)
	for i, p := range primaries {
		h := fnv.New64a()
		_, _ = h.Write([]byte(p))
		_, _ = h.Write([]byte{0})
		_, _ = h.Write([]byte(automation))
		if w := mix(h.Sum64()); i == 0 || w > bestW {
			best, bestW = i, w
		}
	}
	return best
}

// mix is the finaliser of SplitMix64: FNV's low-entropy high bits for
// similar inputs become well spread.
func mix(z uint64) uint64 {
	z ^= z >> 30
	z *= 0xbf58476d1ce4e5b9
	z ^= z >> 27
	z *= 0x94d049bb133111eb
	return z ^ (z >> 31)
}
