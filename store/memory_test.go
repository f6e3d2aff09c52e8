package store

import (
	"testing"
	"time"
)

func TestMemorySweep(t *testing.T) {
	clk := newFakeClock()
	m := NewMemory(Options{Now: clk.Now, ReservationTTL: time.Second})
	for i := 0; i < 100; i++ {
		must(t, m.Register(bg, "e"+string(rune('a'+i%26))+string(rune('a'+i/26)), 1, time.Minute))
	}
	must(t, m.Register(bg, "keep", Unlimited, 0))
	for i := 0; i < 1000; i++ {
		reserve(t, m, "keep") // abandoned
	}
	if m.Len() != 101 {
		t.Fatalf("Len = %d", m.Len())
	}
	clk.Advance(2 * time.Minute)
	must(t, m.Register(bg, "trigger", 1, 0)) // any mutation sweeps
	if m.Len() != 2 {
		t.Fatalf("Len after expiry = %d, want 2", m.Len())
	}
	m.mu.Lock()
	n := len(m.invites["keep"].res)
	m.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d abandoned reservations left", n)
	}
	if inv := get(t, m, "keep"); inv.Reserved != 0 || inv.Used != 0 {
		t.Fatalf("Get = %+v", inv)
	}
	must(t, m.Close())
	must(t, reserve(t, m, "keep").Commit(bg)) // usable after Close
}
