// Command caddy is Caddy with its standard modules and the group_join
// plugin: what `xcaddy build --with github.com/caddy-groupjoin/caddy-groupjoin`
// produces.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-groupjoin/caddy-groupjoin"
)

func main() {
	caddycmd.Main()
}
