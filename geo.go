package groupjoin

import (
	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// Open mmdb readers are shared by every handler (and every config
// generation) that names the same files, so a reload does not reopen them.
var geoPool = caddy.NewUsagePool()

type geoHandle struct{ *tokens.GeoDB }

func (g geoHandle) Destruct() error { return g.Close() }

func loadGeo(countryPath, asnPath string) (tokens.Geo, string, error) {
	key := countryPath + "\x00" + asnPath
	v, _, err := geoPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		db, err := tokens.OpenGeoDB(countryPath, asnPath)
		if err != nil {
			return nil, err
		}
		return geoHandle{db}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return v.(geoHandle).GeoDB, key, nil
}
