package store

import "context"

// ConstraintOf runs the write q on st and reports how st's dialect
// classifies the error it returns: a broken UNIQUE constraint, and of
// those a broken primary key.
func ConstraintOf(ctx context.Context, st Store, q string, args ...any) (unique, primaryKey bool, err error) {
	s, ok := st.(*sqlStore)
	if pg, isPG := st.(*pgStore); isPG {
		s, ok = pg.sqlStore, true
	}
	if !ok {
		panic("ConstraintOf: not a SQL store")
	}
	err = s.write(ctx, func(ctx context.Context, x execer) error {
		_, err := s.exec(ctx, x, q, args...)
		return err
	})
	return s.d.classify(err) == kindUnique, s.d.primaryKey(err), err
}
