package httpapi

// userAdminRoutes registers the routes of this file.
func (s *Server) userAdminRoutes(handle func(path string, res resource)) {}
