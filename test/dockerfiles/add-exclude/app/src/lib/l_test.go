lt
