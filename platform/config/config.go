// Package config binds command-line flags to environment variables, so every
// setting of the binary can be given either way with one name: the flag
// --catalog-database-url is also SOUK_CATALOG_DATABASE_URL. A flag given on
// the command line wins over the environment, which wins over the default.
// Only the composition root calls this package; components receive plain
// Config structs and never read flags or the environment themselves.
package config

import (
	"flag"
	"fmt"
	"sort"
	"strings"
)

// EnvName returns the environment variable for a flag name:
// prefix + upper-cased name with dashes and dots as underscores.
func EnvName(prefix, flagName string) string {
	r := strings.NewReplacer("-", "_", ".", "_")
	return prefix + strings.ToUpper(r.Replace(flagName))
}

// ApplyEnv sets every flag of fs that was not set on the command line from
// its environment variable, looked up with lookup (os.LookupEnv in main).
// Call it after fs.Parse. A value the flag rejects is an error naming both the
// variable and the flag.
func ApplyEnv(fs *flag.FlagSet, prefix string, lookup func(string) (string, bool)) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []string
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		env := EnvName(prefix, f.Name)
		v, ok := lookup(env)
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Sprintf("%s (--%s): invalid value %q: %v", env, f.Name, v, err))
		}
	})
	if len(errs) > 0 {
		sort.Strings(errs)
		return fmt.Errorf("bad environment setting: %s", strings.Join(errs, "; "))
	}
	return nil
}

// DocumentEnv appends "(env PREFIX_NAME)" to every flag's usage, so --help
// shows both spellings of each setting.
func DocumentEnv(fs *flag.FlagSet, prefix string) {
	fs.VisitAll(func(f *flag.Flag) {
		f.Usage += " [env " + EnvName(prefix, f.Name) + "]"
	})
}

// List is a comma-separated list flag value ("catalog,identity").
type List []string

// String implements flag.Value.
func (l *List) String() string { return strings.Join(*l, ",") }

// Set implements flag.Value; it replaces the list.
func (l *List) Set(s string) error {
	*l = nil
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

// Map is a comma-separated key=value flag value ("catalog=http://10.0.0.5:8080").
type Map map[string]string

// String implements flag.Value.
func (m *Map) String() string {
	keys := make([]string, 0, len(*m))
	for k := range *m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + (*m)[k]
	}
	return strings.Join(parts, ",")
}

// Set implements flag.Value; it replaces the map.
func (m *Map) Set(s string) error {
	out := Map{}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok || strings.TrimSpace(k) == "" || strings.TrimSpace(v) == "" {
			return fmt.Errorf("%q: want name=value", part)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	*m = out
	return nil
}
