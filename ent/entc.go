//go:build ignore

// entc.go generates the ent client from ent/schema with the features and
// templates runledger relies on. Run it with `go generate ./ent`.
package main

import (
	"log"

	"entgo.io/ent/entc"
	"entgo.io/ent/entc/gen"
)

func main() {
	err := entc.Generate("./schema", &gen.Config{
		Features: []gen.Feature{
			gen.FeatureVersionedMigration,
			gen.FeatureUpsert,
			gen.FeatureLock,
			gen.FeatureModifier,
			gen.FeatureExecQuery,
			gen.FeatureIntercept,
			gen.FeatureNamedEdges,
		},
		Templates: []*gen.Template{
			gen.MustParse(gen.NewTemplate("runledger").ParseDir("template")),
		},
	})
	if err != nil {
		log.Fatalf("running ent codegen: %v", err)
	}
}
