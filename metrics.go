package groupjoin

import (
	"errors"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are created once per process and kept in a UsagePool, so counts
// survive config reloads; each config's registry gets them registered.
type metrics struct {
	requests *prometheus.CounterVec
	verify   prometheus.Histogram
	// byOutcome holds the requests counter of each outcome seen so far:
	// CounterVec.WithLabelValues hashes the label and takes a read lock
	// that every CPU writes to, on every request.
	byOutcome sync.Map // outcome → prometheus.Counter
}

// count adds one request with outcome.
func (m *metrics) count(outcome string) {
	c, ok := m.byOutcome.Load(outcome)
	if !ok {
		c, _ = m.byOutcome.LoadOrStore(outcome, m.requests.WithLabelValues(outcome))
	}
	c.(prometheus.Counter).Inc()
}

func (*metrics) Destruct() error { return nil }

func loadMetrics(reg *prometheus.Registry) (*metrics, error) {
	v, _, err := metricsPool.LoadOrNew(metricsKey, func() (caddy.Destructor, error) {
		return &metrics{
			requests: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: "caddy",
				Subsystem: "group_join",
				Name:      "requests_total",
				Help:      "Group join requests handled at the edge, by outcome.",
			}, []string{"outcome"}),
			verify: prometheus.NewHistogram(prometheus.HistogramOpts{
				Namespace: "caddy",
				Subsystem: "group_join",
				Name:      "verification_seconds",
				Help:      "Time spent verifying the caller and the invite.",
				Buckets:   []float64{1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2},
			}),
		}, nil
	})
	if err != nil {
		return nil, err
	}
	m := v.(*metrics)
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.verify} {
			if err := reg.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
				return nil, err
			}
		}
	}
	return m, nil
}
