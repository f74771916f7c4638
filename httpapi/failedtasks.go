package httpapi

// failedTaskRoutes registers the routes of this file.
func (s *Server) failedTaskRoutes(handle func(path string, res resource)) {}
