package adapter

// onOwnStack runs fn on a new goroutine, waits for it and re-raises its panic.
// Socket libraries run event handlers on each socket's long-lived reader
// goroutine, which would otherwise keep the stack that an authority call grew.
func onOwnStack(fn func()) {
	done := make(chan any, 1)
	go func() {
		completed := false
		defer func() {
			if completed {
				done <- nil
				return
			}
			done <- recover()
		}()
		fn()
		completed = true
	}()

	if panicValue := <-done; panicValue != nil {
		panic(panicValue)
	}
}
