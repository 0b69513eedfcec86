package db_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/runledger/runledger"
	"github.com/runledger/runledger/db"
	"github.com/runledger/runledger/ent"
	"github.com/runledger/runledger/ent/automation"
	"github.com/runledger/runledger/runledgertest"
)

// databaseURL stands for your DATABASE_URL in the examples: a database
// migrated by runledger's migrations (TestMain makes a fresh one).
var databaseURL string

func TestMain(m *testing.M) {
	url, drop, err := runledgertest.Database(context.Background(), true)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	databaseURL = url
	code := m.Run()
	drop()
	os.Exit(code)
}

// Open a database, then write in a transaction: everything commits, or
// nothing does.
func ExampleDB_WithTx() {
	ctx := context.Background()
	d, err := db.Open(ctx, db.Config{URL: databaseURL, PoolSize: 5})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	ctx = runledger.WithActor(ctx, "billing-service") // fills created_by and updated_by

	err = d.WithTx(ctx, func(tx *ent.Tx) error {
		a, err := tx.Automation.Create().SetName("example-tx-invoices").Save(ctx)
		if err != nil {
			return err
		}
		_, err = tx.Batch.Create().SetAutomation(a).SetName("2026-12").Save(ctx)
		return err
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	errRefused := errors.New("refused by the caller")
	err = d.WithTx(ctx, func(tx *ent.Tx) error {
		if _, err := tx.Automation.Create().SetName("example-tx-never").Save(ctx); err != nil {
			return err
		}
		return errRefused // rolls back the automation created above
	})
	fmt.Println("second transaction:", err)

	names, err := d.Automation.Query().Where(automation.NameHasPrefix("example-tx-")).Select(automation.FieldName).Strings(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	a, err := d.Automation.Query().Where(automation.Name("example-tx-invoices")).Only(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(names, "created by", *a.CreatedBy)
	// Output:
	// second transaction: refused by the caller
	// [example-tx-invoices] created by billing-service
}
