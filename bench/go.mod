module github.com/caddy-groupjoin/caddy-groupjoin/bench

go 1.26.0

require github.com/caddy-groupjoin/caddy-groupjoin v0.0.0

require (
	github.com/maxmind/mmdbwriter v1.2.0 // indirect
	github.com/oschwald/maxminddb-golang/v2 v2.9.0 // indirect
	go4.org/netipx v0.0.0-20231129151722-fdeea329fbba // indirect
	golang.org/x/crypto v0.57.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	gopkg.in/macaroon.v2 v2.1.0 // indirect
)

// The bench measures the plugin in this checkout, never a published one.
replace github.com/caddy-groupjoin/caddy-groupjoin => ../
