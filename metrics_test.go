package groupjoin

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/testcaddy"
)

// scrape reads Caddy's metrics endpoint and returns every sample by its
// name and labels, as printed in the text exposition format.
func scrapeMetrics(t *testing.T, s *site) map[string]float64 {
	t.Helper()
	return scrapeURL(t, s.client, s.url+"/metrics")
}

func scrapeURL(t *testing.T, client *http.Client, url string) map[string]float64 {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, bodyOf(resp))
	}
	samples := make(map[string]float64)
	for _, line := range strings.Split(bodyOf(resp), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	return samples
}

const (
	requestsMetric = "caddy_group_join_requests_total"
	verifyCount    = "caddy_group_join_verification_seconds_count"
)

func outcomeSample(outcome string) string {
	return routeSample(outcome, "userJoinGroup")
}

func routeSample(outcome, route string) string {
	return requestsMetric + `{outcome="` + outcome + `",route="` + route + `"}`
}

func TestMetrics(t *testing.T) {
	b := newBackend(t)
	port, adminPort := testcaddy.FreePort(t), testcaddy.FreePort(t)
	cfg := testcaddy.Adapt(t, testGlobals(port, fmt.Sprint("127.0.0.1:", adminPort))+fmt.Sprintf(`:%[1]d {
	metrics /metrics
	group_join /user/groups/join {
		key %[3]s
	}
	reverse_proxy /user/groups/join %[2]s
}
`, port, b.addr(), testSecret, adminPort))
	testcaddy.Load(t, cfg)
	s := &site{t: t, url: fmt.Sprintf("http://127.0.0.1:%d", port), port: port, backend: b,
		client: testcaddy.Client(10 * time.Second)}

	user := []string{"X-Auth-Token", access(t, "alice")}
	before := scrapeMetrics(t, s)

	// One of each: joined, unauthorized (401), invalid_token (400),
	// forbidden (403), and an invalid access token (401 invalid_token).
	if resp := s.join(joinBody(invite(t, "g1")), user...); resp.StatusCode != 201 {
		t.Fatalf("join: %d %s", resp.StatusCode, bodyOf(resp))
	}
	expectError(t, s.join(joinBody(invite(t, "g1"))), 401, "unauthorized")
	expectError(t, s.join(`{"token":"garbage"}`, user...), 400, "invalid_token")
	expectError(t, s.join(joinBody(invite(t, "g1", "consumer = usr-carol")), user...), 403, "forbidden")
	expectError(t, s.join(joinBody(invite(t, "g1")), "X-Auth-Token", "garbage"), 401, "invalid_token")

	after := scrapeMetrics(t, s)
	want := map[string]float64{
		outcomeSample("joined"):              1,
		outcomeSample("unauthorized"):        1,
		outcomeSample("invalid_token"):       1,
		outcomeSample("forbidden"):           1,
		outcomeSample("invalid_credentials"): 1,
		outcomeSample("invalid_request"):     0,
		// Invites are verified for the join, the bad invite and the
		// consumer-bound one; the two 401s stop before the invite.
		verifyCount: 3,
	}
	for name, delta := range want {
		if _, ok := after[name]; !ok && delta > 0 {
			t.Errorf("%s missing from /metrics", name)
			continue
		}
		if got := after[name] - before[name]; got != delta {
			t.Errorf("%s went up by %v, want %v", name, got, delta)
		}
	}
	if _, ok := after["caddy_group_join_verification_seconds_bucket{le=\"+Inf\"}"]; !ok {
		t.Errorf("verification histogram buckets missing")
	}
	// The admin endpoint's /metrics serves the same registry.
	admin := scrapeURL(t, s.client, fmt.Sprintf("http://127.0.0.1:%d/metrics", adminPort))
	for name := range want {
		if admin[name] != after[name] {
			t.Errorf("admin /metrics %s = %v, site /metrics %v", name, admin[name], after[name])
		}
	}

	// A reload (same config, new registry) keeps the counts: the metrics
	// live in a UsagePool that the new config takes before the old one lets
	// go.
	s.reload(t, cfg)
	reloaded := scrapeMetrics(t, s)
	for name := range want {
		if reloaded[name] != after[name] {
			t.Errorf("%s is %v after the reload, %v before", name, reloaded[name], after[name])
		}
	}
	if resp := s.join(joinBody(invite(t, "g2")), user...); resp.StatusCode != 201 {
		t.Fatalf("join after reload: %d %s", resp.StatusCode, bodyOf(resp))
	}
	if got := scrapeMetrics(t, s)[outcomeSample("joined")]; got != after[outcomeSample("joined")]+1 {
		t.Errorf("joined = %v after one more join, want %v", got, after[outcomeSample("joined")]+1)
	}
}
