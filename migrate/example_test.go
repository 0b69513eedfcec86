package migrate_test

import (
	"context"
	"database/sql"
	"fmt"

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
		fmt.Println(err)
		return
	}
	defer drop()

	sqlDB, err := sql.Open("postgres", url)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sqlDB.Close()
	dir, err := migrate.Embedded()
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := migrate.Apply(ctx, sqlDB, dir, migrate.ApplyOptions{})
	if err != nil {
		fmt.Println(err) // the failing file was rolled back whole
		return
	}
	fmt.Printf("applied: %t, from version %q\n", len(res.Files) > 0, res.From)

	again, err := migrate.Apply(ctx, sqlDB, dir, migrate.ApplyOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	st, err := migrate.Status(ctx, sqlDB, dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("second apply:", len(again.Files), "files; pending:", len(st.Pending), "dirty:", st.Dirty, "at the last version:", st.Current == res.To)
	// Output:
	// applied: true, from version ""
	// second apply: 0 files; pending: 0 dirty: false at the last version: true
}
