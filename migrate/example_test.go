package migrate_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"

	_ "github.com/lib/pq"

	"github.com/runledger/runledger/migrate"
	"github.com/runledger/runledger/runledgertest"
)

// Migrate at application start: apply the migrations compiled into the
// binary. Apply takes an advisory lock, so several instances starting at once
// apply each file once; with nothing pending it changes nothing.
func ExampleApply() {
	ctx := context.Background()
	url, drop, err := runledgertest.Database(ctx, false) // stands for your DATABASE_URL
	if err != nil {
		log.Fatal(err)
	}
	defer drop()

	sqlDB, err := sql.Open("postgres", url)
	if err != nil {
		log.Fatal(err)
	}
	defer sqlDB.Close()
	dir, err := migrate.Embedded()
	if err != nil {
		log.Fatal(err)
	}
	res, err := migrate.Apply(ctx, sqlDB, dir, migrate.ApplyOptions{})
	if err != nil {
		log.Fatal(err) // the failing file was rolled back whole
	}
	fmt.Printf("applied: %t, from version %q\n", len(res.Files) > 0, res.From)

	again, err := migrate.Apply(ctx, sqlDB, dir, migrate.ApplyOptions{})
	if err != nil {
		log.Fatal(err)
	}
	st, err := migrate.Status(ctx, sqlDB, dir)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("second apply:", len(again.Files), "files; pending:", len(st.Pending), "dirty:", st.Dirty, "at the last version:", st.Current == res.To)
	// Output:
	// applied: true, from version ""
	// second apply: 0 files; pending: 0 dirty: false at the last version: true
}
