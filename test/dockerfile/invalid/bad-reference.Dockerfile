FROM Alpine:Latest
