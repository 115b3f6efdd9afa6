//go:build !amd64

package collective

func bestReducers() reducers { return reducers{add: addTo, addDiv: addDivTo} }
