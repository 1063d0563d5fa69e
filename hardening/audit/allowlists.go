package audit

// Config is the audit: section of mysecure's configuration file: what a
// site allows (docs/audit.md). The tags are the file's keys.
type Config struct {
	Admins   []string `mapstructure:"admins"`
	Accounts []string `mapstructure:"accounts"`
	Plugins  []string `mapstructure:"plugins"`
	UDFs     []string `mapstructure:"udfs"`
}

// Apply sets t's allow-lists from c: Admins, the accounts in use, the
// allowed plugins and UDFs.
func (c Config) Apply(t *Target) {
	t.Admins, t.InUse, t.AllowedPlugins, t.AllowedUDFs = c.Admins, c.Accounts, c.Plugins, c.UDFs
}
