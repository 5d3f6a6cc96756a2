package mapping

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// TestSpecialIn8 checks the eight-byte test of scanner.str against the
// byte table it stands for: every byte value at every position among
// plain neighbours (borrows from low bytes), and random words.
func TestSpecialIn8(t *testing.T) {
	want := func(w []byte) bool {
		for _, c := range w {
			if !plain[c] {
				return true
			}
		}
		return false
	}
	check := func(w []byte) {
		t.Helper()
		if got := specialIn8(binary.LittleEndian.Uint64(w)); got != want(w) {
			t.Fatalf("specialIn8(% x) = %v, want %v", w, got, !got)
		}
	}
	for _, fill := range []byte{0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff} {
		for pos := range 8 {
			for c := range 256 {
				w := []byte{fill, fill, fill, fill, fill, fill, fill, fill}
				w[pos] = byte(c)
				check(w)
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	w := make([]byte, 8)
	for range 200000 {
		binary.LittleEndian.PutUint64(w, r.Uint64())
		check(w)
		// Mostly plain words, with now and then one special byte.
		for i := range w {
			w[i] = byte(0x20 + r.IntN(0xe0))
		}
		check(w)
	}
}
