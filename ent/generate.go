// Package ent is the graph client generated from ent/schema. Never edit the
// generated files: change ent/schema, mixin or ent/template and run
// `go generate ./ent` (task generate).
package ent

//go:generate go run -mod=mod entc.go
