package cache

import "testing"

func TestMakeRoomDropsExpiredFirst(t *testing.T) {
	m := make(map[int]bool) // value: expired
	for i := range 64 {
		m[i] = i%13 == 0 // 0, 13, 26, 39, 52
	}
	if got := makeRoom(m, 4, func(expired bool) bool { return expired }); got != 5 {
		t.Errorf("dropped %d, want the 5 expired entries", got)
	}
	if len(m) != 59 {
		t.Fatalf("%d entries left, want 59", len(m))
	}
	for k, expired := range m {
		if expired {
			t.Errorf("expired entry %d kept", k)
		}
	}
}

// However small the map and the batch, room is made: at least one entry
// goes, and no more than the map held.
func TestMakeRoomFreesAtLeastOne(t *testing.T) {
	for n := 1; n <= 40; n++ {
		for range 200 {
			m := make(map[int]struct{}, n)
			for i := range n {
				m[i] = struct{}{}
			}
			got := makeRoom(m, evictionBatch(n), nil)
			if got < 1 || got > n || len(m) != n-got {
				t.Fatalf("map of %d: dropped %d, %d left", n, got, len(m))
			}
		}
	}
}

// Every live entry has the same chance of going, and a batch is about the
// size asked for. A key's count over the rounds is binomial (mean 250,
// standard deviation about 15); the bounds are more than 6 deviations
// away, so the test fails for a biased pick, not by chance.
func TestMakeRoomUnbiased(t *testing.T) {
	const keys, want, rounds = 64, 4, 4000
	drops := make([]int, keys)
	total := 0
	for range rounds {
		m := make(map[int]struct{}, keys)
		for i := range keys {
			m[i] = struct{}{}
		}
		total += makeRoom(m, want, nil)
		for i := range keys {
			if _, ok := m[i]; !ok {
				drops[i]++
			}
		}
	}
	if mean := float64(total) / rounds; mean < want-0.5 || mean > want+0.5 {
		t.Errorf("%.2f entries dropped per call, want about %d", mean, want)
	}
	for k, n := range drops {
		if n < 150 || n > 350 {
			t.Errorf("key %d dropped %d times in %d rounds, want about %d", k, n, rounds, rounds*want/keys)
		}
	}
}

func TestEvictionBatch(t *testing.T) {
	for n, want := range map[int]int{0: 1, 1: 1, 15: 1, 16: 1, 32: 2, 512: 32, 1024: 64} {
		if got := evictionBatch(n); got != want {
			t.Errorf("evictionBatch(%d) = %d, want %d", n, got, want)
		}
	}
}
