package redisstore

// SubjectKey returns the key of the sorted set that indexes the sessions of
// subject.
func (s *Store) SubjectKey(subject string) string { return s.subjectKey(subject) }

// SubjectIDsKey returns the key of the sorted set that lists the sessions of
// subject by id.
func (s *Store) SubjectIDsKey(subject string) string { return s.subjectIDsKey(subject) }
