package daemon

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/mysecure/mysecure/encfs/fusefs"
	"github.com/mysecure/mysecure/encfs/volume"
)

// CategoryRequest adds or removes a category. It always needs the master
// credential, in admin mode too: it rewrites the volume config, like a
// key slot change, and the config's MAC is written only with keys a
// master credential opened.
type CategoryRequest struct {
	Op         string      `json:"op"` // add, remove
	Name       string      `json:"name"`
	Credential *Credential `json:"credential,omitempty"`
}

// CategoryInfo is a category as listed.
type CategoryInfo struct {
	Name string `json:"name"`
	// Entries in the category's store directory (its top level); 0 is
	// an empty category, which may be removed.
	Entries int  `json:"entries"`
	Empty   bool `json:"empty"`
	// Rules that name the category ("@*" rules are not counted).
	Rules int `json:"rules"`
}

// CategoryResponse lists the categories, after a change the volume
// config's new generation.
type CategoryResponse struct {
	Categories []CategoryInfo `json:"categories"`
	Generation uint64         `json:"generation,omitempty"`
}

// Categories lists the categories the daemon serves, with how full each
// is and how many rules name it.
func (d *Daemon) Categories() ([]CategoryInfo, error) {
	rs := d.engine.Rules()
	out := []CategoryInfo{}
	for _, c := range d.fsys.Categories() {
		n, err := d.vol.CategoryEntries(c)
		if err != nil {
			return nil, err
		}
		out = append(out, CategoryInfo{Name: c, Entries: n, Empty: n == 0, Rules: len(rs.CategoryRefs(c))})
	}
	return out, nil
}

func (d *Daemon) handleCategoryList(w http.ResponseWriter, r *http.Request) {
	cats, err := d.Categories()
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, CategoryResponse{Categories: cats})
}

func (d *Daemon) handleCategory(w http.ResponseWriter, r *http.Request) {
	serveAdmin(d, w, r, func(req *CategoryRequest) (any, error) {
		gen, err := d.changeCategory(*req)
		if err != nil {
			return nil, err
		}
		cats, err := d.Categories()
		if err != nil {
			return nil, err
		}
		return CategoryResponse{Categories: cats, Generation: gen}, nil
	})
}

// changeCategory adds or removes a category (adminMu held): in the volume
// config on disk, in the daemon's keys and in the mount, at once.
func (d *Daemon) changeCategory(req CategoryRequest) (uint64, error) {
	if req.Op != "add" && req.Op != "remove" {
		return 0, &APIError{Code: CodeUsage, Message: fmt.Sprintf("unknown category op %q", req.Op)}
	}
	name := strings.TrimPrefix(req.Name, "@")
	if !volume.ValidCategory(name) {
		return 0, &APIError{Code: CodeBadCategoryName, Message: fmt.Sprintf("%v %q: want a lower-case letter, then up to 31 of a-z 0-9 _ -", volume.ErrBadCategoryName, name)}
	}
	if req.Credential == nil {
		return 0, &APIError{Code: CodeCredentials, Message: "adding or removing a category needs the master credential (passphrase and salt, or the RSA key), in admin mode too"}
	}
	vc, err := req.Credential.VolumeCredential()
	if err != nil {
		return 0, err
	}
	v, k, err := d.unlockMaster(vc)
	if err != nil {
		return 0, err
	}
	defer k.Wipe()
	if d.cfg.Rollback != nil {
		// The config on disk must not be older than the last one seen:
		// saving it again would revive what a later save removed.
		if err := d.cfg.Rollback.Observe(v.Config.VolumeID, volume.ConfigPath(v.Dir), v.Config.Generation); err != nil {
			return 0, err
		}
	}
	if req.Op == "add" {
		err = d.addCategory(v, k, name)
	} else {
		err = d.removeCategory(v, k, name)
	}
	if err != nil {
		return 0, err
	}
	if d.cfg.Rollback != nil {
		// After the save: a failure leaves the protection one generation
		// behind, never a false alarm at the next mount.
		if err := d.cfg.Rollback.Observe(v.Config.VolumeID, volume.ConfigPath(v.Dir), v.Config.Generation); err != nil {
			d.log.Error("config generation not recorded", "error", err.Error(), "generation", v.Config.Generation)
		}
	}
	if err := d.keys.FollowCategories(v); err != nil {
		return 0, err
	}
	d.log.Info("category changed", "op", req.Op, "category", name, "generation", v.Config.Generation)
	return v.Config.Generation, nil
}

func (d *Daemon) addCategory(v *volume.Volume, k *volume.Keys, name string) error {
	if err := v.AddCategory(k, name); err != nil {
		return err
	}
	ck, err := k.ContentKey(name)
	if err != nil {
		return err
	}
	nc, err := k.NamesCipher(name)
	if err != nil {
		return err
	}
	// The config is saved: should the mount refuse the category now, the
	// next mount serves it.
	if err := d.fsys.AddCategory(name, fusefs.CategoryKeys{Content: ck, Names: nc}); err != nil {
		return fmt.Errorf("category @%s was added to the volume config, but the mount cannot serve it until the next mount: %w", name, err)
	}
	return nil
}

func (d *Daemon) removeCategory(v *volume.Volume, k *volume.Keys, name string) error {
	if err := volume.CheckCategory(name, v.Config.Categories); err != nil {
		return err
	}
	if reason := d.denyAllReason(); reason != "" {
		return &APIError{Code: CodeConflict, Message: "the rules in force are not known (" + reason + "): cannot tell whether a rule names @" + name}
	}
	var refs []string
	if rs := d.engine.Rules(); rs != nil {
		refs = rs.CategoryRefs(name)
	}
	if len(refs) > 0 {
		return fmt.Errorf("%w: @%s is named by %s", volume.ErrCategoryInUse, name, strings.Join(refs, "; "))
	}
	// Hide it first: from here on nothing new can be created in it
	// through the mount, so the emptiness check in RemoveCategory holds.
	restore, err := d.fsys.HideCategory(name)
	if err != nil {
		return err
	}
	if err := v.RemoveCategory(k, name, nil); err != nil {
		restore()
		return err
	}
	return nil
}
