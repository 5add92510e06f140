// Command parseyaml is the baseline of the `otelcfg validate` figure: the
// same kind of process doing only otelconf.ParseYAML on each file.
package main

import (
	"fmt"
	"os"

	"go.opentelemetry.io/contrib/otelconf"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: parseyaml FILE...")
		os.Exit(2)
	}
	status := 0
	for _, f := range os.Args[1:] {
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if _, err := otelconf.ParseYAML(b); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", f, err)
			status = 1
		}
	}
	os.Exit(status)
}
