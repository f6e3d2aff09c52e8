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
	routes   sync.Map // route label → *routeCounters
}

// routeCounters are the requests counters of one route, by outcome.
type routeCounters struct {
	requests *prometheus.CounterVec
	route    string
	// byOutcome holds the counter of each outcome seen so far:
	// CounterVec.WithLabelValues hashes the labels and takes a read lock
	// that every CPU writes to, on every request.
	byOutcome sync.Map // outcome → prometheus.Counter
}

// forRoute returns the counters of the route labelled route: the invite
// type of a join, "examine" or "verify".
func (m *metrics) forRoute(route string) *routeCounters {
	if c, ok := m.routes.Load(route); ok {
		return c.(*routeCounters)
	}
	c, _ := m.routes.LoadOrStore(route, &routeCounters{requests: m.requests, route: route})
	return c.(*routeCounters)
}

// count adds one request with outcome.
func (c *routeCounters) count(outcome string) {
	v, ok := c.byOutcome.Load(outcome)
	if !ok {
		v, _ = c.byOutcome.LoadOrStore(outcome, c.requests.WithLabelValues(outcome, c.route))
	}
	v.(prometheus.Counter).Inc()
}

func (*metrics) Destruct() error { return nil }

func loadMetrics(reg *prometheus.Registry) (*metrics, error) {
	v, _, err := metricsPool.LoadOrNew(metricsKey, func() (caddy.Destructor, error) {
		return &metrics{
			requests: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: "caddy",
				Subsystem: "group_join",
				Name:      "requests_total",
				Help:      "Invite join and preview requests handled at the edge, by outcome and route (the invite type of a join, examine or verify).",
			}, []string{"outcome", "route"}),
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
