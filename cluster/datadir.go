package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

const nodeIDFile = "node-id"

// claimDataDir creates dir if needed and makes sure it belongs to node id:
// the first start writes the id, later starts must present the same one.
func claimDataDir(dir, id string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(dir, nodeIDFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if owner := strings.TrimSpace(string(b)); owner != id {
			return fmt.Errorf("data dir %s belongs to node %s, not %s", dir, owner, id)
		}
		return nil
	case errors.Is(err, os.ErrNotExist):
		if _, statErr := os.Stat(filepath.Join(dir, raftDBFile)); statErr == nil {
			return fmt.Errorf("data dir %s holds raft data but no %s file; refusing to guess its owner", dir, nodeIDFile)
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(id+"\n"), 0o644); err != nil {
			return fmt.Errorf("write node id: %w", err)
		}
		if err := syncFile(tmp); err != nil {
			return err
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("write node id: %w", err)
		}
		return syncFile(dir)
	default:
		return fmt.Errorf("read node id: %w", err)
	}
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}
