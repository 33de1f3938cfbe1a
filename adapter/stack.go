package adapter

// onOwnStack runs fn on a new goroutine, waits for it and re-raises its panic.
// Socket libraries run event handlers on each socket's long-lived reader
// goroutine, which would otherwise keep the stack that an authority call grew.
func onOwnStack(fn func()) {
	done := make(chan any, 1)
	go func() {
		// recover returns nil when fn returns normally. Since Go 1.21 even
		// panic(nil) recovers a non-nil *runtime.PanicNilError.
		defer func() { done <- recover() }()
		fn()
	}()

	if panicValue := <-done; panicValue != nil {
		panic(panicValue)
	}
}
