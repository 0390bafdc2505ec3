package enrich

import (
	"testing"
	"time"
)

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 400 * time.Millisecond: "0s", -400 * time.Millisecond: "0s", 45 * time.Second: "45s",
		-2 * time.Minute: "-2m", 12 * time.Minute: "12m", 2*time.Hour + 5*time.Minute: "2h5m",
		24 * time.Hour: "24h", 50 * time.Hour: "2d2h", 72 * time.Hour: "3d",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%s) = %q, want %q", d, got, want)
		}
	}
}
