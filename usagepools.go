package groupjoin

import "github.com/caddyserver/caddy/v2"

// What outlives a config reload. Each provisioned Handler takes one
// reference per pool entry it uses and gives it back in Cleanup; during a
// reload the new config takes its references before the old one lets go,
// so an entry still in use is never destroyed, and one no config uses any
// more is (Destruct). Everything else a Handler holds, its keyring and its
// token and geo caches included, is built anew by each Provision.
var (
	// storePool keeps the usage stores (storeHandle), keyed by their
	// configuration: the memory store's counts and reservations, and the
	// Redis connection pool. The admin API finds the stores here.
	storePool = caddy.NewUsagePool()

	// geoPool keeps the open mmdb readers (geoHandle), keyed by the paths
	// and the content of the files: a reload with unchanged files does not
	// reopen them, and a file replaced on disk (as geoipupdate does) is
	// opened anew.
	geoPool = caddy.NewUsagePool()

	// metricsPool keeps the one set of Prometheus collectors (*metrics)
	// under metricsKey, so counters carry over a reload.
	metricsPool = caddy.NewUsagePool()
)

const metricsKey = "metrics"
