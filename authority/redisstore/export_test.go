package redisstore

// SubjectKey returns the key of the sorted set that indexes the sessions of
// subject.
func (s *Store) SubjectKey(subject string) string { return s.subjectKey(subject) }
