package retention_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/mysecure/mysecure/backup/retention"
)

func ExampleApply() {
	day := func(d, h int) time.Time { return time.Date(2026, 5, d, h, 0, 0, 0, time.UTC) }
	backups := []retention.Item{
		{ID: "b1", Time: day(1, 2)},
		{ID: "b2", Time: day(2, 2)},
		{ID: "b3", Time: day(3, 2)},
		{ID: "b4", Time: day(3, 14)},
		{ID: "b5", Time: day(4, 2)},
	}
	p := retention.Policy{Last: 1, Daily: 2, Weekly: 2}
	now := day(4, 12) // passed in: the package never reads the clock
	ds, err := retention.Apply(backups, p, now, time.UTC)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("policy:", p)
	for _, d := range ds {
		if d.Keep {
			fmt.Printf("keep   %s %s (%s)\n", d.Item.ID, d.Item.Time.Format("Mon 01-02 15:04"), strings.Join(d.Reasons, ", "))
		} else {
			fmt.Printf("remove %s %s\n", d.Item.ID, d.Item.Time.Format("Mon 01-02 15:04"))
		}
	}
	// Output:
	// policy: last 1, daily 2, weekly 2
	// keep   b5 Mon 05-04 02:00 (last, daily, weekly)
	// keep   b4 Sun 05-03 14:00 (daily, weekly)
	// remove b3 Sun 05-03 02:00
	// remove b2 Sat 05-02 02:00
	// remove b1 Fri 05-01 02:00
}
