package httpapi

// helperRoutes registers the routes of this file.
func (s *Server) helperRoutes(handle func(path string, res resource)) {}
