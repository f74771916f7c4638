package fsm

import (
	"bytes"

	bolt "go.etcd.io/bbolt"
)

// PageResult is one page of a table in descending key order.
type PageResult struct {
	Keys, Values [][]byte
	// HasBefore: there are keys greater than the first one (a previous page).
	// HasAfter: there are keys smaller than the last one (a next page).
	HasBefore, HasAfter bool
}

// Page reads up to limit rows of a table in descending key order, starting
// strictly after position (or before it when reverse, i.e. a previous page).
// A nil position starts at the newest row. The cost is proportional to the
// page, not to the table.
func Page(tx *bolt.Tx, table []byte, position []byte, reverse bool, limit int) PageResult {
	c := tx.Bucket(table).Cursor()
	var res PageResult
	if !reverse {
		var k, v []byte
		if position == nil {
			k, v = c.Last()
		} else {
			k, v = c.Seek(position)
			if k == nil {
				k, v = c.Last()
			}
			for k != nil && bytes.Compare(k, position) >= 0 {
				k, v = c.Prev()
			}
		}
		for ; k != nil && len(res.Keys) < limit; k, v = c.Prev() {
			res.Keys = append(res.Keys, k)
			res.Values = append(res.Values, v)
		}
		res.HasAfter = k != nil
	} else {
		k, v := c.Seek(position)
		if k != nil && bytes.Equal(k, position) {
			k, v = c.Next()
		}
		for ; k != nil && len(res.Keys) < limit; k, v = c.Next() {
			res.Keys = append(res.Keys, k)
			res.Values = append(res.Values, v)
		}
		res.HasBefore = k != nil
		for i, j := 0, len(res.Keys)-1; i < j; i, j = i+1, j-1 {
			res.Keys[i], res.Keys[j] = res.Keys[j], res.Keys[i]
			res.Values[i], res.Values[j] = res.Values[j], res.Values[i]
		}
	}
	if len(res.Keys) == 0 {
		return res
	}
	if !reverse {
		first := res.Keys[0]
		k, _ := c.Seek(first)
		if k != nil {
			k, _ = c.Next()
		}
		res.HasBefore = k != nil
	} else {
		last := res.Keys[len(res.Keys)-1]
		k, _ := c.Seek(last)
		if k != nil {
			k, _ = c.Prev()
		}
		res.HasAfter = k != nil
	}
	return res
}
